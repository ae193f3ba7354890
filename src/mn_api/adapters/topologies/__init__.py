"""Where the gateway keeps the declared topology of each job it submitted."""
