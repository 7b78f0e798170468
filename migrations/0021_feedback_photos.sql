-- Photos a grid worker attaches to feedback (the "after" picture next to the rider's "before",
-- as FixMyStreet and ODK allow). They live beside the intake photos — same type and size checks,
-- same metadata stripping in server/src/reports/photos.rs, same readers — and name the history
-- row of the feedback step they belong to; intake photos have no event.
alter table report_photo add column event_id bigint;
alter table report_photo
    add constraint report_photo_event_fkey foreign key (event_id) references report_event (id) on delete cascade;
create index report_photo_event_idx on report_photo (event_id) where event_id is not null;
