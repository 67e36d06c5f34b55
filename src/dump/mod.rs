//! Dump streams: parsing a database dump into row events, and writing them back.

pub mod copy_text;
