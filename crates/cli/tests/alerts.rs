//! The Prometheus files in deploy/prometheus (issue 17): the alerting rules pass
//! `promtool check rules` and their unit tests (`promtool test rules`), every alert is tested
//! firing and silent, and the scrape config passes `promtool check config`. That the rules
//! read series `/metrics` really has is checked against a running collector in http.rs.

mod common;

use std::collections::BTreeSet;

use serde_json::Value;

use common::{promtool, text};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/prometheus");

fn promtool_passes(args: &[&str]) -> String {
    let o = promtool(args, "");
    let said = text(&o);
    assert!(o.status.success(), "promtool {}: {}\n{said}", args.join(" "), o.status);
    said
}

fn yaml(name: &str) -> Value {
    use figment::providers::{Format, Yaml};
    figment::Figment::from(Yaml::file_exact(format!("{DIR}/{name}"))).extract().unwrap()
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let said = promtool_passes(&["check", "rules", &format!("{DIR}/rules.yml")]);
    assert!(said.contains("SUCCESS"), "{said}");
    let said = promtool_passes(&["test", "rules", &format!("{DIR}/rules_test.yml")]);
    assert!(said.contains("SUCCESS") && !said.contains("FAILED"), "{said}");
    let said = promtool_passes(&["check", "config", &format!("{DIR}/prometheus.yml")]);
    assert!(said.contains("1 rule files found"), "the config loads rules.yml: {said}");
}

#[test]
fn every_alert_is_named_labelled_annotated_and_tested_both_ways() {
    let rules = yaml("rules.yml");
    let alerts: Vec<&Value> =
        rules["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()).collect();
    assert!(alerts.len() >= 13, "{} alerts", alerts.len());
    let mut names = BTreeSet::new();
    for a in &alerts {
        let name = a["alert"].as_str().expect("only alerting rules");
        assert!(
            name.starts_with(|c: char| c.is_ascii_uppercase()) && name.chars().all(|c| c.is_ascii_alphanumeric()),
            "{name}: CamelCase"
        );
        assert!(names.insert(name), "{name} twice");
        assert!(a["for"].is_string(), "{name}: no `for`");
        assert!(matches!(a["labels"]["severity"].as_str(), Some("critical" | "warning")), "{name}: severity");
        for k in ["summary", "description"] {
            assert!(a["annotations"][k].as_str().is_some_and(|s| s.len() > 10), "{name}: no {k}");
        }
    }
    // Each alert fires in some test and is expected silent in another evaluation.
    let tests = yaml("rules_test.yml");
    let (mut fires, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for t in tests["tests"].as_array().unwrap() {
        for case in t["alert_rule_test"].as_array().unwrap() {
            let name = case["alertname"].as_str().unwrap();
            let expected = case["exp_alerts"].as_array().map_or(0, Vec::len);
            if expected > 0 { &mut fires } else { &mut silent }.insert(name);
        }
    }
    assert_eq!(fires, names, "alerts never tested firing (or tests of unknown alerts)");
    assert_eq!(silent, names, "alerts never tested silent");
}
