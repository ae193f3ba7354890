"""`python -m mn_api.entrypoints.fake_core`: mn-fake-core."""

from mn_api.entrypoints.fake_core.command import main

main()
