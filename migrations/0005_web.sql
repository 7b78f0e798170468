-- The web map's "which grid am I in" card shows the grid workers the county publishes.
--
-- account.phone is a person's private number and is never published. A worker's public contact
-- is a separate, deliberate value: the service line the county prints on the grid's public sign
-- (网格员公示牌). It is NULL until an admin sets it; NULL means "name only" on the public card.
alter table account add column public_phone text;
alter table account add constraint account_public_phone_format
    check (public_phone is null or public_phone ~ '^[0-9+() -]{3,32}$');
comment on column account.public_phone is
    'Published work contact of a grid worker (shown to the public); account.phone stays private';
