//! migrations/functions/ is the current SQL of every function: the database built by the
//! migrations and the files holds exactly the functions the files define, with their bodies, and
//! `gridmap migrate`'s path applies them (migrations/functions/README.md).

use std::collections::BTreeMap;

use sqlx::PgPool;

use gridmap_server::db::{FUNCTION_FILES, MIGRATOR, TEST_MIGRATOR};

/// `name → body` of every `create or replace function` in the files; a name twice is a mistake.
fn functions_in_files() -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for (file, sql) in FUNCTION_FILES {
        let lower = sql.to_ascii_lowercase();
        let mut rest = 0;
        while let Some(at) = lower[rest..].find("create or replace function ").map(|i| rest + i) {
            let header = &sql[at + "create or replace function ".len()..];
            let name = header[..header.find('(').expect("an argument list")].trim().to_string();
            // The body: the first dollar-quoted string after `as`.
            let open = lower[at..].find(" as $").map(|i| at + i + " as ".len()).expect("a dollar-quoted body");
            let tag_len = sql[open + 1..].find('$').expect("a dollar-quote tag") + 2;
            let tag = &sql[open..open + tag_len];
            let start = open + tag_len;
            let end = start + sql[start..].find(tag).unwrap_or_else(|| panic!("{file}: {name}'s body is not closed"));
            assert!(found.insert(name.clone(), sql[start..end].to_string()).is_none(), "{name} twice in the files");
            rest = end;
        }
    }
    found
}

/// `name → [body, …]` of the database's own functions (PostGIS's are the extension's members).
async fn functions_in_database(pool: &PgPool) -> BTreeMap<String, Vec<String>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select p.proname::text, p.prosrc from pg_proc p join pg_namespace n on n.oid = p.pronamespace
          where n.nspname = 'public'
            and not exists (select 1 from pg_depend d
                             where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')",
    )
    .fetch_all(pool)
    .await
    .expect("pg_proc");
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, body) in rows {
        found.entry(name).or_default().push(body);
    }
    found
}

fn assert_database_matches_files(database: &BTreeMap<String, Vec<String>>) {
    let files = functions_in_files();
    assert!(files.len() >= 30, "the files define {} functions", files.len());
    for (name, bodies) in database {
        let file = files.get(name).unwrap_or_else(|| {
            panic!("function {name} is in the database but in no file of migrations/functions/ (README.md)")
        });
        assert_eq!(
            bodies.len(),
            1,
            "{name} has {} overloads: drop the old signature in a numbered migration",
            bodies.len()
        );
        assert_eq!(&bodies[0], file, "{name}: the database's body differs from its file");
    }
    for name in files.keys() {
        assert!(database.contains_key(name), "{name} is in a file but not in the database");
    }
}

#[sqlx::test(migrator = "gridmap_server::db::TEST_MIGRATOR")]
async fn every_database_function_has_one_file_copy_with_the_same_body(pool: PgPool) {
    assert_database_matches_files(&functions_in_database(&pool).await);
}

/// The numbered migrations alone, an outdated body left by hand, then `gridmap migrate`'s path
/// from four instances at once: the files replace it, and concurrent starts do not collide.
#[sqlx::test(migrations = false)]
async fn migrate_applies_the_files_after_the_numbered_migrations_from_instances_at_once(pool: PgPool) {
    MIGRATOR.run(&pool).await.expect("numbered migrations");
    sqlx::query("create or replace function gridmap_reason() returns text language sql stable as $$ select 'stale' $$")
        .execute(&pool)
        .await
        .expect("an outdated body");
    let outdated = functions_in_database(&pool).await;
    assert_eq!(outdated["gridmap_reason"], [" select 'stale' ".to_string()]);
    let starts = (0..4).map(|_| gridmap_server::db::migrate(&pool));
    for started in futures::future::join_all(starts).await {
        started.expect("migrate");
    }
    assert_database_matches_files(&functions_in_database(&pool).await);
}

#[test]
fn numbered_migrations_from_0015_on_define_no_function() {
    for migration in MIGRATOR.iter().filter(|m| m.version >= 15) {
        let code: String = migration
            .sql
            .lines()
            .filter(|line| !line.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase();
        let code = code.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            !code.contains("create function") && !code.contains("create or replace function"),
            "migration {} defines a function: put it in migrations/functions/ (README.md)",
            migration.version
        );
    }
    // The test migrator is these migrations and one more: the files.
    assert_eq!(TEST_MIGRATOR.iter().count(), MIGRATOR.iter().count() + 1);
}

/// A test database built from the numbered migrations alone would miss every function changed in
/// a file since; each test names the migrator that adds them.
#[test]
fn api_tests_build_their_databases_with_the_function_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api");
    for entry in std::fs::read_dir(&dir).expect("tests/api") {
        let path = entry.expect("entry").path();
        let source = std::fs::read_to_string(&path).expect("read");
        assert!(
            !source.contains(concat!("migrations = ", "\"../migrations\"")),
            "{}: use #[sqlx::test(migrator = \"gridmap_server::db::TEST_MIGRATOR\")]",
            path.display()
        );
    }
}
