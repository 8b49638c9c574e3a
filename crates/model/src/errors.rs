//! Error text for people: an error and its causes on one line.

/// `e` and its causes, "outer: inner: …", each cause once. Libraries differ in whether an
/// error's own message repeats its source (`"{path}: {source}"`) or leaves it to the chain
/// (tokio-postgres' "error connecting to server" keeps "Connection refused" only there), so
/// a cause already in the text is not added again.
pub fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = c.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("opening {path}: {source}")]
    struct Repeats {
        path: &'static str,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("error connecting to server")]
    struct Hides(#[source] std::io::Error);

    #[test]
    fn each_cause_appears_once() {
        let denied = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let repeats = Repeats { path: "/data", source: denied() };
        let text = with_causes(&repeats);
        assert_eq!(text.matches(&denied().to_string()).count(), 1, "{text}");
        let hides = Hides(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(with_causes(&hides).starts_with("error connecting to server: "), "{}", with_causes(&hides));
        assert!(with_causes(&hides).to_lowercase().contains("refused"), "{}", with_causes(&hides));
    }
}
