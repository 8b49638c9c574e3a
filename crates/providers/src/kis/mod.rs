//! KIS (한국투자증권) Open API adapter and its protocol-faithful fake server.
