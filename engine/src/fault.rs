//! Fault injection on a port (work in progress).
