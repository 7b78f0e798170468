-- Bearer tokens for logged-in accounts. Only a SHA-256 of each token is stored, so a copy of
-- the database cannot be replayed as logins; tokens expire and can be revoked (logout, admin).
create table session_token (
    id          bigint generated always as identity,
    account_id  bigint not null,
    token_hash  bytea not null,
    created_at  timestamptz not null default now(),
    expires_at  timestamptz not null,
    revoked_at  timestamptz,
    constraint session_token_pkey primary key (id),
    constraint session_token_hash_key unique (token_hash),
    constraint session_token_account_fkey foreign key (account_id) references account (id) on delete cascade,
    constraint session_token_hash_length check (octet_length(token_hash) = 32)
);
create index session_token_account_idx on session_token (account_id);
