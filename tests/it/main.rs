//! The integration tests, one binary: each module is one area of behaviour, and `common` is the
//! harness they share (a private PostgreSQL started once for the whole binary, fresh databases,
//! the real router over real HTTP, signed callbacks, `zegolog` processes).
//!
//! Run one area with `cargo test --test it <module>::`, e.g. `cargo test --test it shapes::`.

mod common;

mod alerting;
mod analytics;
mod callbacks;
mod citus;
mod cli;
mod clients;
mod dashboard;
mod durability;
mod erase;
mod faults;
mod fuzz;
mod grant;
mod import;
mod incident;
mod instances;
mod loadtest;
mod modules;
mod outage;
mod percentiles;
mod replay;
mod report;
mod retention;
mod robustness;
mod rollups;
mod schema;
mod seed;
mod shapes;
mod spool;
mod sql_queries;
mod time_zone;
