-- Stations (暖"新"驿站): a station is a valid point.

create or replace function station_before_write() returns trigger language plpgsql as $$
begin
    if ST_IsEmpty(new.geom) or not ST_IsValid(new.geom) then
        raise exception using errcode = '22023', message = 'station geometry must be a valid point',
              constraint = 'station_geom_not_empty';
    end if;
    return new;
end $$;

-- Every state a station has after a write, with who and why (migration 0033): the same
-- `gridmap.actor` / `gridmap.reason` settings as a grid's history (ogc/edit.rs sets them).
-- An update that changes none of the recorded values (a touch) records nothing.
create or replace function station_record_version() returns trigger language plpgsql as $$
declare
    s station;
begin
    if tg_op = 'DELETE' then
        s := old;
    else
        s := new;
    end if;
    if tg_op = 'UPDATE' and (new.name, new.opening_hours, new.services, new.notice, new.phone)
            is not distinct from (old.name, old.opening_hours, old.services, old.notice, old.phone) then
        return new;
    end if;
    insert into station_version (station_id, op, name, opening_hours, services, notice, phone, author, reason)
    values (s.id, lower(tg_op), s.name, s.opening_hours, s.services, s.notice, s.phone,
            gridmap_actor(), gridmap_reason());
    return s;
end $$;
create or replace trigger station_record_version after insert or update or delete on station
    for each row execute function station_record_version();
