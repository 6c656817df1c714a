//! Flow ownership and software steering between cores (work in progress).
