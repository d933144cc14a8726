//! The client side of the protocol (placeholder; being written).
