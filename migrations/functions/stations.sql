-- Stations (暖"新"驿站): a station is a valid point.

create or replace function station_before_write() returns trigger language plpgsql as $$
begin
    if ST_IsEmpty(new.geom) or not ST_IsValid(new.geom) then
        raise exception using errcode = '22023', message = 'station geometry must be a valid point',
              constraint = 'station_geom_not_empty';
    end if;
    return new;
end $$;
