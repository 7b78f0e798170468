-- Station visits and the suggestion box (暖"新"驿站, issue 23 §3; docs/field-work.md "## Stations").
--
-- A rider checks in at a station from the phone (within 150 m of it, once per person, station and
-- hour); the station's host (a `station_host` account linked to one station) and the county see
-- the counts, the public sees a busy-ness hint only. Riders leave suggestions in a station's box
-- or the county-wide one (station_id null); the host (or an admin) answers. Who checked in and
-- who wrote a suggestion are private: never in a public response.

-- The exclusion constraint below compares ids with `=` inside a GiST index.
create extension if not exists btree_gist;

-- A new role. `building_leader` (issue 23 §1, migration 0032) is listed too, so that this
-- migration, which runs after 0032, does not take it away again.
alter table account drop constraint account_role_check;
alter table account add constraint account_role_check check (role in (
    'resident', 'rider', 'grid_worker', 'planner', 'admin', 'building_leader', 'station_host'));

-- The one station a host keeps up to date.
alter table account add column station_id bigint;
alter table account add constraint account_station_fkey
    foreign key (station_id) references station (id) on delete set null;
alter table account add constraint account_station_only_hosts
    check (station_id is null or role = 'station_host');
create index account_station_idx on account (station_id) where station_id is not null;

-- What the host posts on the station card: a temporary closure, a free meal day, …
alter table station add column notice text not null default '';
alter table station add constraint station_notice_length check (char_length(notice) <= 500);
alter table station add constraint station_opening_hours_length check (char_length(opening_hours) <= 200);

-- Every state a station has had after an edit, with who and why (like grid_version): written by
-- the trigger station_record_version (migrations/functions/stations.sql). No foreign key, so
-- the history outlives a deleted station.
create table station_version (
    id             bigint generated always as identity,
    station_id     bigint not null,
    op             text not null,
    name           text not null,
    opening_hours  text not null,
    services       text[] not null,
    notice         text not null,
    phone          text not null,
    author         text not null,
    reason         text,
    created_at     timestamptz not null default now(),
    constraint station_version_pkey primary key (id),
    constraint station_version_op_check check (op in ('insert', 'update', 'delete'))
);
create index station_version_station_idx on station_version (station_id, id);

-- A check-in. `account_id` is private (who); `distance_m` is the server's own measure from the
-- phone's fix to the station on the ellipsoid. A person counts once per station per hour: the
-- visit holds [visited_at, counted_until) and two holds of one person at one station never
-- overlap (the rule lives here, so concurrent check-ins cannot both count).
create table station_visit (
    id             bigint generated always as identity,
    station_id     bigint not null,
    account_id     bigint not null,
    visited_at     timestamptz not null default now(),
    counted_until  timestamptz not null,
    distance_m     real not null,
    accuracy_m     real,
    source         text not null default 'operator',
    constraint station_visit_pkey primary key (id),
    constraint station_visit_station_fkey foreign key (station_id) references station (id) on delete cascade,
    constraint station_visit_account_fkey foreign key (account_id) references account (id) on delete cascade,
    constraint station_visit_within_radius check (distance_m >= 0 and distance_m <= 150),
    constraint station_visit_accuracy_range check (accuracy_m is null or (accuracy_m >= 0 and accuracy_m <= 100)),
    constraint station_visit_hour check (counted_until = visited_at + interval '1 hour'),
    constraint station_visit_once_per_hour exclude using gist (
        station_id with =, account_id with =, tstzrange(visited_at, counted_until) with &&)
);
create index station_visit_station_time_idx on station_visit (station_id, visited_at);

-- The suggestion box (意见建议征集信箱): a station's (station_id) or the county's (null).
-- `account_id` (who wrote) is known to admins only; `answered_by` likewise.
create table station_suggestion (
    id             bigint generated always as identity,
    station_id     bigint,
    account_id     bigint not null,
    body           text not null,
    created_at     timestamptz not null default now(),
    answer         text,
    answered_at    timestamptz,
    answered_by    bigint,
    source         text not null default 'operator',
    constraint station_suggestion_pkey primary key (id),
    constraint station_suggestion_station_fkey foreign key (station_id) references station (id) on delete cascade,
    constraint station_suggestion_account_fkey foreign key (account_id) references account (id) on delete cascade,
    constraint station_suggestion_answered_by_fkey foreign key (answered_by) references account (id) on delete set null,
    constraint station_suggestion_body_length check (btrim(body) <> '' and char_length(body) <= 1000),
    constraint station_suggestion_answer_length check (answer is null or (btrim(answer) <> '' and char_length(answer) <= 1000)),
    constraint station_suggestion_answered check ((answer is null) = (answered_at is null))
);
create index station_suggestion_station_idx on station_suggestion (station_id, created_at);
