//! template.yaml and the code agree on each function's limits: the `Timeout` Lambda enforces is
//! the `FUNCTION_TIMEOUT_SECS` the code checks its retry budget against at cold start, the
//! configuration each function deploys with passes that check, and HTTP functions answer
//! before API Gateway's 30 s integration limit.

use serde_yaml::Value;
use std::collections::HashMap;

/// A function's plain-string environment (Globals merged with its own; `!Ref`s left out).
fn environment(globals: &Value, function: &Value) -> HashMap<String, String> {
    let mut env = HashMap::new();
    for source in [globals, function] {
        if let Some(vars) = source
            .get("Environment")
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
        {
            for (k, v) in vars {
                let value = match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
                if let (Some(k), Some(v)) = (k.as_str(), value) {
                    env.insert(k.to_owned(), v);
                }
            }
        }
    }
    env
}

#[test]
fn every_function_knows_its_timeout_and_its_retries_fit_in_it() {
    let template = devkit::moto::template();
    let globals = &template["Globals"]["Function"];
    let mut checked = 0;
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = name.as_str().unwrap();
        let props = &resource["Properties"];
        let timeout = props
            .get("Timeout")
            .or_else(|| globals.get("Timeout"))
            .and_then(Value::as_u64)
            .expect("a timeout");
        let mut env = environment(globals, props);
        assert_eq!(
            env.get("FUNCTION_TIMEOUT_SECS").map(String::as_str),
            Some(timeout.to_string().as_str()),
            "{name}: FUNCTION_TIMEOUT_SECS must be its Timeout"
        );
        let is_http = props["Events"]
            .as_mapping()
            .is_some_and(|events| events.values().any(|e| e["Type"].as_str() == Some("HttpApi")));
        if is_http {
            assert!(
                timeout < 30,
                "{name}: API Gateway gives up after 30 s; Timeout is {timeout}"
            );
        }
        for (k, v) in [
            ("DOUYIN_CLIENT_KEY", "k"),
            ("OCEANENGINE_APP_ID", "1"),
            ("OAUTH_CALLBACK_URL", "https://api.example.com/cb"),
        ] {
            env.entry(k.into()).or_insert_with(|| v.into());
        }
        if let Err(e) = shared::Config::from_lookup(|k| env.get(k).cloned()) {
            panic!("{name} would fail its cold start: {e}");
        }
        checked += 1;
    }
    assert!(checked >= 5, "every function is checked");
}

/// samconfig.toml's defaults name only parameters the template has, and no secret one.
#[test]
fn samconfig_overrides_only_known_non_secret_parameters() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../samconfig.toml")).expect("samconfig.toml");
    let template = devkit::moto::template();
    let parameters = template["Parameters"].as_mapping().unwrap();
    // The lines of the multi-line string, up to its closing quotes.
    let block: String = text
        .lines()
        .skip_while(|l| !l.starts_with("parameter_overrides"))
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("\"\"\""))
        .collect::<Vec<_>>()
        .join("\n");
    let names: Vec<&str> = block
        .split_whitespace()
        .filter_map(|token| token.split_once('=').map(|(name, _)| name))
        .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric()) && !name.is_empty())
        .collect();
    assert!(!names.is_empty(), "{block}");
    for name in names {
        let parameter = parameters
            .get(name)
            .unwrap_or_else(|| panic!("samconfig.toml names {name}, which template.yaml does not have"));
        assert!(
            parameter.get("NoEcho").and_then(Value::as_bool) != Some(true),
            "{name} is a secret: it must not be in samconfig.toml"
        );
    }
}
