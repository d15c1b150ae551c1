//! Dev and operator tools that are not the service: load generation, benchmarks, synthetic
//! data. Built with the `tools` cargo feature (on by default), so that
//! `cargo build --release --no-default-features` gives a `zegolog` that serves, migrates and
//! reports without linking what only these need (`reqwest`, `tempfile`). They use the library's
//! public API; no service module imports them.
//!
//! - [`loadtest`]: `zegolog loadtest`: realistic signed callback traffic, and a check of what got stored.
//! - [`bench`]: `zegolog bench`, PostgreSQL's ceiling and zegolog under load side by side.
//! - [`seed`]: `zegolog seed`, realistic synthetic traffic COPYed into a database, rollups included.
//! - [`bench_queries`]: `zegolog bench-queries`, the views' standard queries timed on N seeded logouts.
//! - [`citus`]: a local Citus cluster (a coordinator and workers) for the Citus tests and benchmark.
//! - `scratch`: the throwaway PostgreSQL and databases `bench` and `bench-queries` measure on.
//! - `traffic`: the traffic model `loadtest` and `seed` share: room popularity, roles,
//!   session lengths, accounts and nicknames.

pub mod bench;
pub mod bench_queries;
pub mod citus;
pub mod loadtest;
mod scratch;
pub mod seed;
mod traffic;
