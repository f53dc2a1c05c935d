//! Dramatiq workload against real Valkey.
