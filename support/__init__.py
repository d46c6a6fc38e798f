"""What the tests and the benchmarks share, so that neither imports the other: throwaway
servers (PostgreSQL, SeaweedFS, network-namespace hosts and the nodes on them), a fake Discord
and a bot on it, and rendered songs whose tempo, key and chords are known."""
