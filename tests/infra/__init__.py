"""Throwaway infrastructure servers the tests start themselves (PostgreSQL, SeaweedFS)."""
