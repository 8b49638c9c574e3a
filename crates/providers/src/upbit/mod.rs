//! Upbit quotation API adapter and its protocol-faithful fake server.
