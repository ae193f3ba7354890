"""`python -m mn_api`: the same as the `mn-api` command."""

from mn_api.entrypoints.cli import main

if __name__ == "__main__":
    main()
