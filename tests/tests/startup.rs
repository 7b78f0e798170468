//! The real binary at start and stop: clear one-line errors when PostgreSQL or PostGIS is
//! missing, graceful shutdown on SIGTERM, and the import command's all-or-nothing contract.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use gridmap_e2e::{ScratchDb, Server, free_port, gridmap, url_for};

fn run(command: &mut std::process::Command) -> (i32, String) {
    let out = command.stdout(Stdio::piped()).stderr(Stdio::piped()).output().expect("run gridmap");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn unreachable_postgres_gives_one_clear_line_and_a_failing_exit() {
    let url = format!("postgres://postgres@127.0.0.1:{}/gridmap", free_port());
    let (code, text) = run(gridmap(&url).arg("migrate"));
    assert_ne!(code, 0);
    assert!(text.contains("cannot reach PostgreSQL"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
}

#[tokio::test]
async fn database_without_postgis_names_the_fix() {
    // A role that may not create extensions, owning a database where PostGIS is not enabled:
    // exactly what an operator meets on a server where PostGIS was never set up for them.
    let db = ScratchDb::new(false).await;
    let role = format!("{}_owner", db.name);
    let admin = db.pool().await;
    sqlx::query(&format!("create role {role} login")).execute(&admin).await.expect("role");
    sqlx::query(&format!("alter database {} owner to {role}", db.name)).execute(&admin).await.expect("owner");
    admin.close().await;
    let url = url_for(&db.name).replacen("postgres@", &format!("{role}@"), 1);
    let (code, text) = run(gridmap(&url).arg("migrate"));
    assert_ne!(code, 0);
    assert!(text.contains("PostGIS") && text.contains("CREATE EXTENSION postgis"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let _ = std::process::Command::new("psql")
        .arg(gridmap_e2e::admin_url())
        .args([
            "-qc",
            &format!("drop database if exists {} with (force)", db.name),
            "-qc",
            &format!("drop role if exists {role}"),
        ])
        .status();
}

#[tokio::test]
async fn sigterm_exits_zero_and_stops_accepting() {
    let db = ScratchDb::new(true).await;
    let mut server = Server::start(&db, &[]).await;
    let health = server.url("/healthz");
    let client = reqwest::Client::new();
    assert!(client.get(&health).send().await.expect("up").status().is_success());
    let status = tokio::task::spawn_blocking(move || server.terminate()).await.expect("join");
    assert!(status.success(), "exit status {status:?}");
    // The process has exited (terminate waited for it): its socket is closed already.
    assert!(client.get(&health).send().await.is_err(), "nothing may answer after shutdown");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish() {
    let db = ScratchDb::new(true).await;
    let mut server = Server::start(&db, &[]).await;
    // A login whose body arrives in two parts: SIGTERM lands while the server is still reading.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let body =
        reqwest::Body::wrap_stream(futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
        ));
    let request = reqwest::Client::new()
        .post(server.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body(body)
        .send();
    let in_flight = tokio::spawn(request);
    tx.send(Ok(br#"{"name": "nobody-at-all", "#.to_vec())).await.expect("first half");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.child.id();
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.send(Ok(br#""password": "wrong password here"}"#.to_vec())).await.expect("second half");
    drop(tx);
    let response = in_flight.await.expect("join").expect("the in-flight request is answered");
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED, "handled to the end, not cut off");
    let status = tokio::task::spawn_blocking(move || server.child.wait().expect("wait")).await.expect("join");
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn import_cli_rejects_a_bad_file_by_index_and_stores_nothing() {
    let db = ScratchDb::new(true).await;
    let mut file = tempfile();
    write!(
        file.1,
        r#"{{"type":"FeatureCollection","features":[
            {{"type":"Feature","properties":{{"code":"E2E-001","name":"ok"}},"geometry":{{"type":"Polygon","coordinates":[[[118.15,36.17],[118.16,36.17],[118.16,36.18],[118.15,36.17]]]}}}},
            {{"type":"Feature","properties":{{"code":"E2E-002"}},"geometry":{{"type":"Polygon","coordinates":[[[118.16,36.17],[118.17,36.17],[118.17,36.18],[118.16,36.17]]]}}}}]}}"#
    )
    .expect("write");
    let (code, text) = run(gridmap(&db.url).args(["import", "grids"]).arg(&file.0));
    assert_ne!(code, 0);
    assert!(text.contains("feature 1") && text.contains("`name`"), "{text}");
    let pool = db.pool().await;
    let grids: i64 = sqlx::query_scalar("select count(*) from grid").fetch_one(&pool).await.expect("count");
    assert_eq!(grids, 0);
}

#[tokio::test]
async fn user_add_reads_the_password_from_stdin() {
    let db = ScratchDb::new(true).await;
    let mut child = gridmap(&db.url)
        .args(["user", "add", "--role", "planner", "--name", "planner-li", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(b"a long enough secret\n").expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pool = db.pool().await;
    let (role, hash): (String, String) =
        sqlx::query_as("select role, password_hash from account where name = 'planner-li'")
            .fetch_one(&pool)
            .await
            .expect("account");
    assert_eq!(role, "planner");
    assert!(hash.starts_with("$argon2id$"));
}

fn tempfile() -> (std::path::PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!("gridmap-e2e-{}.geojson", uuid::Uuid::new_v4()));
    let file = std::fs::File::create(&path).expect("create temp file");
    (path, file)
}
