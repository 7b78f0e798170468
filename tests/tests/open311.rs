//! Open311 as a GeoReport v2 client speaks it, against the real binary: the spec client in
//! `gridmap_e2e::georeport` (XML read by an XML parser) does what `FixMyStreet`'s Open311 client
//! does — discovery, services.xml, a service definition, POST requests.xml with a static API key
//! and the personal fields `FixMyStreet` sends, GET requests.xml with comma lists and the
//! county's `jurisdiction_id` — and checks that JSON and XML carry the same data and that
//! errors come as `<errors>`.

use std::process::Stdio;

use gridmap_e2e::georeport::{Client, Format};
use gridmap_e2e::{Server, gridmap, seeded_db};

/// `gridmap apikey add NAME`: the key is the one line on standard output.
fn add_key(url: &str, name: &str) -> String {
    let out = gridmap(url).args(["apikey", "add", name]).stderr(Stdio::piped()).output().expect("apikey add");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).expect("utf-8").trim().to_string();
    assert!(key.starts_with("gmk_") && key.len() == 68, "one key on stdout: {key:?}");
    key
}

#[tokio::test]
async fn a_georeport_v2_client_files_and_reads_requests_in_xml_and_json_with_a_static_key() {
    let db = seeded_db("open311-e2e-password").await;
    let server = Server::start(&db, &[("GRIDMAP_PUBLIC_URL", "https://grid.yiyuan.example/")]).await;
    let client = Client::new(&server.url("/open311/v2"));
    let key = add_key(&db.url, "fixmystreet-e2e");

    // Discovery: an absolute endpoint URL from GRIDMAP_PUBLIC_URL, both formats listed.
    for format in [Format::Json, Format::Xml] {
        let discovery = client.discovery(format).await;
        assert_eq!(discovery.status, 200);
        let record = &discovery.records[0];
        let url_key = if format == Format::Xml { "endpoints/endpoint/url" } else { "endpoints" };
        assert!(record[url_key].contains("https://grid.yiyuan.example/open311/v2"), "{format:?}: {record:?}");
    }
    let xml_discovery = client.discovery(Format::Xml).await;
    assert_eq!(xml_discovery.root, "discovery");
    assert!(xml_discovery.content_type.starts_with("text/xml"));
    assert_eq!(xml_discovery.records[0]["endpoints/endpoint/formats/format"], "application/json,text/xml");

    // services.xml: the same services as services.json, field by field.
    let (json, xml) = (client.services(Format::Json).await, client.services(Format::Xml).await);
    assert_eq!(xml.root, "services");
    assert!(xml.records.len() >= 10, "{} services", xml.records.len());
    assert_eq!(json.records, xml.records, "services.json and services.xml carry the same data");
    let code =
        xml.records.iter().find(|s| s["service_code"] == "manhole_cover").expect("manhole_cover")["service_code"]
            .clone();
    let definition = client.service_definition(&code, Format::Xml).await;
    assert_eq!((definition.status, definition.root.as_str()), (200, "service_definition"));
    assert_eq!(definition.records[0]["service_code"], code);

    // POST requests.xml the way FixMyStreet does (jurisdiction, name, email, phone, attribute[]);
    // the jurisdiction is the county's code (GET /api/counties).
    let form = [
        ("api_key", key.as_str()),
        ("jurisdiction_id", "370323"),
        ("service_code", "manhole_cover"),
        ("lat", "36.185"),
        ("long", "118.165"),
        ("description", "井盖缺失 — manhole cover missing"),
        ("first_name", "Sentinel"),
        ("last_name", "Reporter-E2E"),
        ("email", "sentinel-e2e@example.org"),
        ("phone", "13800009999"),
        ("attribute[fms_extra_title]", "cover missing"),
    ];
    let created = client.post_request(Format::Xml, &form).await;
    assert_eq!((created.status, created.root.as_str()), (201, "service_requests"), "{created:?}");
    let id = created.records[0]["service_request_id"].clone();
    assert!(id.parse::<i64>().is_ok(), "{id}");

    // GET it back in both formats: the same record; the personal fields are nowhere.
    let (one_json, one_xml) = (client.request(&id, Format::Json).await, client.request(&id, Format::Xml).await);
    assert_eq!(one_xml.root, "service_requests");
    assert_eq!(one_json.records, one_xml.records, "requests/{id}.json and .xml agree");
    let request = &one_xml.records[0];
    assert_eq!(request["status"], "open");
    assert_eq!(request["service_code"], "manhole_cover");
    assert_eq!(request["description"], "井盖缺失 — manhole cover missing");
    assert_eq!(request["lat"].parse::<f64>().ok(), Some(36.185));
    for private in ["Sentinel", "Reporter-E2E", "sentinel-e2e", "13800009999", "fixmystreet-e2e"] {
        assert!(!format!("{one_xml:?}").contains(private), "{private} is not published");
    }

    // Comma lists for status and service_code, as the spec allows.
    let listed =
        client.requests(Format::Xml, &[("status", "open,closed"), ("service_code", "manhole_cover,streetlight")]).await;
    assert_eq!(listed.status, 200);
    assert!(listed.records.iter().any(|r| r["service_request_id"] == id));
    assert!(listed.records.iter().all(|r| ["manhole_cover", "streetlight"].contains(&r["service_code"].as_str())));
    let closed_only = client.requests(Format::Xml, &[("status", "closed"), ("service_code", "manhole_cover")]).await;
    assert!(closed_only.records.iter().all(|r| r["status"] == "closed"));
    // The county's own list has it; a jurisdiction that is no county's code (an integration
    // configured before counties) is ignored, as it was then.
    let county = client.requests(Format::Xml, &[("jurisdiction_id", "370323"), ("status", "open")]).await;
    assert!(county.records.iter().any(|r| r["service_request_id"] == id), "{county:?}");
    let unknown = client.requests(Format::Xml, &[("jurisdiction_id", "yiyuan"), ("status", "open")]).await;
    assert_eq!((unknown.status, unknown.root.as_str()), (200, "service_requests"), "{unknown:?}");
    assert_eq!(unknown.records, county.records, "one county in the demo: the same list");
    let same_json = client
        .requests(Format::Json, &[("status", "open,closed"), ("service_code", "manhole_cover,streetlight")])
        .await;
    assert_eq!(same_json.records, listed.records, "the list is the same in both formats");

    // Errors are <errors><error><code/><description/> in XML, whatever produced them.
    let bad_status = client.requests(Format::Xml, &[("status", "open,fixed")]).await;
    assert_eq!((bad_status.status, bad_status.root.as_str()), (400, "errors"));
    assert_eq!(bad_status.records[0]["code"], "400");
    assert!(bad_status.records[0]["description"].starts_with("status"));
    let missing = client.service_definition("no_such_service", Format::Xml).await;
    assert_eq!((missing.status, missing.root.as_str()), (404, "errors"));
    let bad_date = client.requests(Format::Xml, &[("start_date", "yesterday")]).await;
    assert_eq!((bad_date.status, bad_date.root.as_str()), (400, "errors"));

    // Revoked: the next POST is refused (403, as <errors>), and nothing more is stored.
    let out = gridmap(&db.url).args(["apikey", "revoke", "fixmystreet-e2e"]).output().expect("apikey revoke");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let refused = client.post_request(Format::Xml, &form).await;
    assert_eq!((refused.status, refused.root.as_str()), (403, "errors"), "{refused:?}");
    assert_eq!(refused.records[0]["code"], "403");
    let pool = db.pool().await;
    let reports: i64 = sqlx::query_scalar("select count(*) from report where description like '井盖缺失%'")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(reports, 1);
    let last_used: Option<String> =
        sqlx::query_scalar("select last_used_at::text from api_key where name = 'fixmystreet-e2e'")
            .fetch_one(&pool)
            .await
            .expect("key row");
    assert!(last_used.is_some(), "the key's last use is recorded");
}
