//! Black-box integration tests: the real server, a real receiver, a temporary database each.

mod channels;
mod cli;
mod delivery;
mod events;
mod fuzz_input;
mod helpers;
mod openapi;
mod operations;
mod restart;
mod security;
mod validation;
mod websocket;
