-- Static per-client API keys (issue 25.3): an integration such as FixMyStreet's Open311 client
-- or a desktop GIS keeps one key for months, where a login token expires in 7 days. A key acts
-- for one account (whose role and grids decide what it may do), is limited to named scopes,
-- is stored only as its SHA-256 (the key is 256 random bits, so a slow hash adds nothing), and
-- is revoked, never deleted, so that what it did stays attributable.
create table api_key (
    id            bigint generated always as identity,
    name          text not null,
    account_id    bigint not null,
    key_hash      bytea not null,
    scopes        text[] not null,
    created_at    timestamptz not null default now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    constraint api_key_pkey primary key (id),
    constraint api_key_name_key unique (name),
    constraint api_key_hash_key unique (key_hash),
    constraint api_key_account_fkey foreign key (account_id) references account (id) on delete cascade,
    constraint api_key_hash_length check (octet_length(key_hash) = 32),
    constraint api_key_name_format check (name ~ '^[A-Za-z0-9_.@-]{2,64}$'),
    constraint api_key_scopes_known check (cardinality(scopes) > 0 and scopes <@ array['open311', 'ogc_edit'])
);
create index api_key_account_idx on api_key (account_id);
