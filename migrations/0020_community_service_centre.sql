-- Issue 20 item 10: "which grid am I in" tells a resident whom to contact. Where no grid worker's
-- work phone is published, that is the community's service centre (社区党群服务中心): its
-- address and its public service line, as printed on its door — public values, like a station's
-- phone, never a person's. Both optional: a county that has not entered them shows none.
alter table community
    add column service_centre_address text,
    add column service_centre_phone   text,
    add constraint community_service_centre_address_not_blank
        check (service_centre_address is null or (btrim(service_centre_address) <> '' and length(service_centre_address) <= 200)),
    add constraint community_service_centre_phone_format
        check (service_centre_phone is null or service_centre_phone ~ '^[0-9][0-9 -]{4,19}$');
