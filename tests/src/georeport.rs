//! A GeoReport v2 client written from the public specification
//! (<http://wiki.open311.org/GeoReport_v2>), not from gridmap's code: it speaks both formats the
//! spec defines and reads XML with an XML parser (roxmltree), the way `FixMyStreet`'s Open311
//! client (`XML::Simple`) does — element by element, never by matching strings. JSON and XML
//! answers are turned into the same [`Request`]/[`Service`] records, so a test can check that
//! the two formats carry the same data.

use std::collections::BTreeMap;

/// `json` or `xml`: the extension the spec puts on every path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    pub fn ext(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Xml => "xml",
        }
    }
}

/// Every child element's text, by name (a record in the spec's flat shape). Empty elements
/// (`<address/>`) read as absent, as `XML::Simple`'s `SuppressEmpty` does.
pub type Record = BTreeMap<String, String>;

/// What a call got: the HTTP status, the Content-Type, and the parsed records — for an error,
/// the `code`/`description` pairs of `<errors>` or the JSON array.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub records: Vec<Record>,
    /// The XML root element's name (`services`, `service_requests`, `errors`, …); JSON: empty.
    pub root: String,
}

pub struct Client {
    /// The endpoint, e.g. `http://host/open311/v2` (no trailing slash).
    pub endpoint: String,
    http: reqwest::Client,
}

fn scalar_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) if s.is_empty() => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A JSON array of flat objects → records (nested values are rendered as JSON text).
fn json_records(body: &str) -> Vec<Record> {
    let value: serde_json::Value = serde_json::from_str(body).expect("the answer is JSON");
    let items = match value {
        serde_json::Value::Array(items) => items,
        object @ serde_json::Value::Object(_) => vec![object],
        other => panic!("a GeoReport JSON answer is an array or an object, got {other}"),
    };
    items
        .iter()
        .map(|item| {
            item.as_object()
                .expect("each item is an object")
                .iter()
                .filter_map(|(k, v)| scalar_text(v).map(|t| (k.clone(), t)))
                .collect()
        })
        .collect()
}

/// The spec's XML: a root element whose children are the records (`<request>`, `<service>`,
/// `<error>`), each a flat list of elements; a root without record children (`<discovery>`,
/// `<service_definition>`) is itself the one record. Nested lists (`<endpoints>`,
/// `<attributes>`) are flattened to their first descendant's text under `list/item/field`.
fn xml_records(body: &str) -> (String, Vec<Record>) {
    let doc = roxmltree::Document::parse(body).expect("the answer is well-formed XML");
    let root = doc.root_element();
    let record_name = match root.tag_name().name() {
        "services" => Some("service"),
        "service_requests" => Some("request"),
        "errors" => Some("error"),
        _ => None,
    };
    let read = |node: roxmltree::Node| -> Record {
        let mut record = Record::new();
        for child in node.children().filter(roxmltree::Node::is_element) {
            if child.children().any(|c| c.is_element()) {
                // e.g. endpoints/endpoint/url → "endpoints/endpoint/url"
                for leaf in child.descendants().filter(|d| d.is_element() && d.children().all(|c| c.is_text())) {
                    let path: Vec<&str> = leaf
                        .ancestors()
                        .take_while(|a| *a != node)
                        .filter(roxmltree::Node::is_element)
                        .map(|a| a.tag_name().name())
                        .collect();
                    let key = path.into_iter().rev().collect::<Vec<_>>().join("/");
                    if let Some(text) = leaf.text().filter(|t| !t.is_empty()) {
                        record
                            .entry(key)
                            .and_modify(|v: &mut String| {
                                v.push(',');
                                v.push_str(text);
                            })
                            .or_insert(text.to_string());
                    }
                }
            } else if let Some(text) = child.text().filter(|t| !t.is_empty()) {
                record.insert(child.tag_name().name().to_string(), text.to_string());
            }
        }
        record
    };
    let records = match record_name {
        Some(name) => root
            .children()
            .filter(roxmltree::Node::is_element)
            .inspect(|c| assert_eq!(c.tag_name().name(), name, "<{}> holds only <{name}>", root.tag_name().name()))
            .map(read)
            .collect(),
        None => vec![read(root)],
    };
    (root.tag_name().name().to_string(), records)
}

impl Client {
    pub fn new(endpoint: &str) -> Self {
        Self { endpoint: endpoint.trim_end_matches('/').to_string(), http: reqwest::Client::new() }
    }

    async fn answer(response: reqwest::Response, format: Format) -> Answer {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response.text().await.expect("read the body");
        let (root, records) = match format {
            Format::Json => (String::new(), json_records(&body)),
            Format::Xml => xml_records(&body),
        };
        Answer { status, content_type, records, root }
    }

    /// `GET {path}.{format}` with query pairs.
    pub async fn get(&self, path: &str, format: Format, query: &[(&str, &str)]) -> Answer {
        let url = format!("{}/{path}.{}", self.endpoint, format.ext());
        let response = self.http.get(url).query(query).send().await.expect("GET");
        Self::answer(response, format).await
    }

    /// `GET discovery.{format}`.
    pub async fn discovery(&self, format: Format) -> Answer {
        self.get("discovery", format, &[]).await
    }

    /// `GET services.{format}`.
    pub async fn services(&self, format: Format) -> Answer {
        self.get("services", format, &[]).await
    }

    /// `GET services/{code}.{format}`.
    pub async fn service_definition(&self, code: &str, format: Format) -> Answer {
        self.get(&format!("services/{code}"), format, &[]).await
    }

    /// `POST requests.{format}`, form-encoded as the spec says.
    pub async fn post_request(&self, format: Format, form: &[(&str, &str)]) -> Answer {
        let url = format!("{}/requests.{}", self.endpoint, format.ext());
        let response = self.http.post(url).form(form).send().await.expect("POST");
        Self::answer(response, format).await
    }

    /// `GET requests.{format}` with the spec's filters.
    pub async fn requests(&self, format: Format, query: &[(&str, &str)]) -> Answer {
        self.get("requests", format, query).await
    }

    /// `GET requests/{id}.{format}`.
    pub async fn request(&self, id: &str, format: Format) -> Answer {
        self.get(&format!("requests/{id}"), format, &[]).await
    }
}
