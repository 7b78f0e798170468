//! What a refused statement means for the client, in one place: a named constraint maps to the
//! field and the words a client understands; any other integrity or data error is still the
//! client's (400/409/422), never a 500, and never PostgreSQL's own text (which can echo values
//! and internals). The HTTP edge (`http::error`) and the OGC error mapping both use this.

/// A client-side fault found by the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// The request field at fault, when the constraint names one.
    pub field: Option<&'static str>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 400: a value breaks a rule (check, not-null, bad value).
    Invalid,
    /// 409: it clashes with a stored row (unique).
    Conflict,
    /// 422: it refers to something that does not exist or is still referred to (foreign key).
    Unprocessable,
}

/// Named constraints → (field, what the rule is). Names are stable: every migration names its
/// constraints. A constraint missing here still maps by its class, without a field.
const NAMED: &[(&str, &str, &str)] = &[
    ("account_name_key", "name", "an account with this name exists"),
    ("account_name_format", "name", "letters, digits and _ . @ - only, 2 to 64 characters"),
    ("account_part_time_only_riders", "part_time_grid_worker", "applies to riders only"),
    ("account_public_phone_format", "public_phone", "3 to 32 characters of digits, spaces, + ( ) -"),
    ("grid_assignment_grid_fkey", "grid_ids", "names a grid that does not exist"),
    ("report_description_length", "description", "at most 2000 characters"),
    ("report_idempotency_key_key", "Idempotency-Key", "this key was used for another report"),
    ("grid_code_key", "code", "another grid has this code"),
    ("grid_code_format", "code", "capital letters, digits and -, 2 to 32 characters"),
    ("grid_name_not_blank", "name", "must not be blank"),
    ("grid_households_nonnegative", "households", "must not be negative"),
    ("grid_community_fkey", "community_id", "no such community"),
    ("building_floors_range", "floors", "between 0 and 200"),
    ("building_units_range", "units", "between 0 and 100"),
    ("building_households_range", "households", "between 0 and 10000"),
    ("building_use_check", "use", "residential, commercial, mixed, public, industrial or other"),
    ("building_grid_fkey", "grid_id", "no such grid"),
    ("building_external_id_key", "external_id", "another building has this external id"),
    ("station_external_id_key", "external_id", "another station has this external id"),
    ("station_name_not_blank", "name", "must not be blank"),
    ("station_services_known", "services", "an unknown service"),
    ("door_round_scope_check", "scope", "one of grid, community, county"),
    ("door_round_scope_target", "target_id", "names the grid, community or county of the scope"),
    ("door_round_period_order", "ends_on", "must be on or after starts_on"),
    ("door_round_name_length", "name", "1 to 100 characters"),
    ("door_round_grid_fkey", "target_id", "no such grid"),
    ("door_round_community_fkey", "target_id", "no such community"),
    ("door_round_county_fkey", "target_id", "no such county"),
    ("door_visit_outcome_check", "outcome", "one of at_home, not_home, refused"),
    ("door_visit_households_range", "households", "between 1 and 10000"),
    ("door_visit_unit_range", "unit", "between 1 and 100"),
    ("door_visit_note_length", "note", "at most 500 characters"),
    ("door_visit_idempotency_key_key", "Idempotency-Key", "this key was used for another visit"),
    ("door_visit_building_fkey", "building_id", "no such building"),
    ("sentiment_entry_body_length", "body", "1 to 2000 characters"),
    ("sentiment_entry_tags_known", "tags", "an unknown tag"),
    ("sentiment_entry_report_key", "report_id", "this report was already made from another entry"),
    ("sentiment_entry_grid_fkey", "grid_id", "no such grid"),
    ("sentiment_entry_building_fkey", "building_id", "no such building"),
    ("station_notice_length", "notice", "at most 500 characters"),
    ("station_opening_hours_length", "opening_hours", "at most 200 characters"),
    ("account_station_fkey", "station_id", "names a station that does not exist"),
    ("account_station_only_hosts", "station_id", "applies to station hosts only"),
    ("station_suggestion_body_length", "body", "1 to 1000 characters, not blank"),
    ("station_suggestion_answer_length", "answer", "1 to 1000 characters, not blank"),
    ("station_visit_within_radius", "distance_m", "a check-in counts within 150 m of the station"),
    ("station_visit_once_per_hour", "station_id", "one check-in per person, station and hour"),
    ("account_building_fkey", "building_id", "names a building that does not exist"),
    ("account_building_only_residents", "building_id", "applies to residents only"),
    ("wish_category_check", "category", "an unknown category"),
    ("wish_body_length", "body", "1 to 500 characters, not blank"),
    ("wish_resident_name_length", "resident_name", "1 to 64 characters, not blank"),
    ("wish_resident_phone_format", "resident_phone", "3 to 32 characters of digits, spaces, + ( ) -"),
    ("wish_end_reason_length", "reason", "at most 500 characters"),
    ("wish_building_fkey", "building_id", "no such building"),
];

/// The client's fault in a refused statement, if it is one (`None`: a server-side failure).
pub fn client_fault(err: &sqlx::Error) -> Option<Fault> {
    let db = err.as_database_error()?;
    let code = db.code()?;
    let kind = match code.as_ref() {
        "23505" => FaultKind::Conflict,
        "23503" => FaultKind::Unprocessable,
        "23514" | "23502" | "23P01" => FaultKind::Invalid,
        // Data exceptions: a value PostgreSQL cannot take (bad timestamp or number syntax, out of
        // range, a NUL in text, a string too long) — always from the request.
        c if c.starts_with("22") => FaultKind::Invalid,
        _ => return None,
    };
    if let Some(name) = db.constraint()
        && let Some((_, field, message)) = NAMED.iter().find(|(n, _, _)| *n == name)
    {
        return Some(Fault { kind, field: Some(field), message: (*message).to_string() });
    }
    let message = match (kind, code.as_ref(), db.constraint()) {
        (FaultKind::Conflict, _, Some(c)) => format!("the value is already in use (rule {c})"),
        (FaultKind::Unprocessable, _, Some(c)) => format!("refers to something that does not exist (rule {c})"),
        (_, _, Some(c)) => format!("a value breaks the rule {c}"),
        (_, "22021", None) => "text must be valid UTF-8 without NUL characters".to_string(),
        (_, "22001", None) => "a text value is too long".to_string(),
        (_, "22003", None) => "a number is out of range".to_string(),
        (_, "22007" | "22008" | "22009", None) => "a date or time value is not valid".to_string(),
        _ => "a value is not valid".to_string(),
    };
    Some(Fault { kind, field: None, message })
}

#[cfg(test)]
mod tests {
    use super::NAMED;

    #[test]
    fn every_named_constraint_exists_in_the_migrations() {
        let sql: String = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
            .expect("migrations")
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect();
        for (name, _, _) in NAMED {
            assert!(sql.contains(name), "constraint {name} is not in any migration");
        }
    }
}
