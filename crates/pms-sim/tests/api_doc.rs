//! Executes every example in `docs/pms-api.md` against a fresh simulator, in order, so the
//! document cannot drift from the code. Each ```` ```http request ```` block is sent; the
//! following ```` ```json response STATUS ```` block gives the expected status and the shape of
//! the body: every documented field must be present with the same JSON type (`null` documents a
//! field that may be null), and problem `type`s must match exactly.

use std::collections::HashMap;

use serde_json::Value;
use slotbridge_pms_sim::PmsSim;

#[derive(Debug)]
struct Example {
    line: usize,
    request: String,
    status: u16,
    body: Option<Value>,
    captures: Vec<(String, String)>,
}

fn examples(doc: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut lines = doc.lines().enumerate();
    let mut pending: Option<(usize, String)> = None;
    while let Some((n, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut block = String::new();
        for (_, l) in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            block.push_str(l);
            block.push('\n');
        }
        let words: Vec<&str> = info.split_whitespace().collect();
        match words.as_slice() {
            ["http", "request"] => {
                assert!(
                    pending.is_none(),
                    "line {}: request without response",
                    n + 1
                );
                pending = Some((n + 1, block));
            }
            [_, "response", status, rest @ ..] => {
                let (line, request) = pending
                    .take()
                    .unwrap_or_else(|| panic!("line {}: response without request", n + 1));
                let captures = rest
                    .iter()
                    .filter_map(|w| w.strip_prefix("capture="))
                    .flat_map(|c| c.split(','))
                    .filter_map(|pair| pair.split_once(':'))
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .collect();
                let body = (!block.trim().is_empty()).then(|| {
                    serde_json::from_str(&block)
                        .unwrap_or_else(|e| panic!("line {}: bad JSON in the doc: {e}", n + 1))
                });
                out.push(Example {
                    line,
                    request,
                    status: status.parse().expect("status"),
                    body,
                    captures,
                });
            }
            _ => {}
        }
    }
    assert!(pending.is_none(), "a request at the end has no response");
    out
}

/// `doc`'s shape is found in `actual`; returns the first mismatch's path.
fn shape(doc: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (doc, actual) {
        (Value::Null, _) => Ok(()),
        (Value::Object(d), Value::Object(a)) => {
            for (k, v) in d {
                let av = a.get(k).ok_or_else(|| format!("{path}.{k} is missing"))?;
                if (k == "type" || k == "status") && d.contains_key("title") && v != av {
                    return Err(format!("{path}.{k}: documented {v}, got {av}"));
                }
                shape(v, av, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(d), Value::Array(a)) => {
            if let Some(first) = d.first() {
                if a.is_empty() {
                    return Err(format!("{path} is empty, documented with items"));
                }
                for (i, item) in a.iter().enumerate() {
                    shape(first, item, &format!("{path}[{i}]"))?;
                }
            }
            Ok(())
        }
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => Ok(()),
        _ => Err(format!("{path}: documented {doc}, got {actual}")),
    }
}

#[tokio::test]
async fn every_example_in_pms_api_md_runs() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/pms-api.md");
    let doc = std::fs::read_to_string(path).expect("docs/pms-api.md");
    let examples = examples(&doc);
    assert!(examples.len() >= 25, "only {} examples", examples.len());

    let sim = PmsSim::builder().build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let handle = sim.serve(listener).await.expect("serve");
    let http = reqwest::Client::new();

    let tz = jiff::tz::TimeZone::get("Australia/Sydney").expect("tz");
    let mut monday = jiff::Timestamp::now()
        .to_zoned_datetime(tz.clone())
        .date()
        .checked_add(jiff::Span::new().days(2))
        .expect("date");
    while monday.weekday() != jiff::civil::Weekday::Monday {
        monday = monday.tomorrow().expect("date");
    }
    let thursday = monday.checked_add(jiff::Span::new().days(3)).expect("date");
    let friday = monday.checked_add(jiff::Span::new().days(4)).expect("date");
    let lastweek = monday
        .checked_add(jiff::Span::new().days(-14))
        .expect("date");
    let offset = monday
        .at(9, 0, 0, 0)
        .to_zoned_datetime(tz)
        .expect("zoned")
        .strftime("%:z")
        .to_string();
    let mut vars: HashMap<String, String> = HashMap::from([
        ("monday".into(), monday.to_string()),
        ("thursday".into(), thursday.to_string()),
        ("friday".into(), friday.to_string()),
        ("lastweek".into(), lastweek.to_string()),
        ("offset".into(), offset),
    ]);

    for ex in &examples {
        let mut text = ex.request.clone();
        for (k, v) in &vars {
            text = text.replace(&format!("{{{{{k}}}}}"), v);
        }
        assert!(
            !text.contains("{{"),
            "line {}: unknown placeholder",
            ex.line
        );
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut head_lines = head.lines();
        let first = head_lines.next().expect("request line");
        let (method, target) = first.split_once(' ').expect("METHOD PATH");
        let mut req = http.request(
            method.parse().expect("method"),
            format!("{}{}", handle.base_url(), target.trim()),
        );
        for h in head_lines {
            let (k, v) = h.split_once(':').expect("header");
            req = req.header(k.trim(), v.trim());
        }
        if !body.trim().is_empty() {
            req = req.body(body.trim().to_owned());
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = resp.bytes().await.expect("body");
        assert_eq!(
            status,
            ex.status,
            "line {}: {first}: {}",
            ex.line,
            String::from_utf8_lossy(&bytes)
        );
        if status >= 400 {
            assert_eq!(content_type, "application/problem+json", "line {}", ex.line);
        }
        if let Some(expected) = &ex.body {
            let actual: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("line {}: response is not JSON: {e}", ex.line));
            if let Err(why) = shape(expected, &actual, "$") {
                panic!("line {}: {first}: {why}\nactual: {actual}", ex.line);
            }
            for (var, field) in &ex.captures {
                // A field of the body, or a JSON pointer into it (`/sites/0/api_key`).
                let found = if field.starts_with('/') {
                    actual.pointer(field)
                } else {
                    actual.get(field.as_str())
                };
                let v = found
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("line {}: no {field} to capture", ex.line));
                vars.insert(var.clone(), v.to_owned());
            }
        }
    }
    handle.shutdown().await;
}
