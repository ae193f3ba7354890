"""Pure rules of the gateway: job statuses, events, manifests, payload paths, bundles, graphs."""
