-- Imports upsert buildings and stations by their external id (the OSM id, or a property the
-- operator names), as grids upsert by code: a re-import of the same file must not double the
-- buildings, nor the households of their grids (issue 25 item 10).

alter table station add column external_id text;

-- Before this migration a re-import stored every building again. An exact copy (same external
-- id, geometry and attributes, a higher id) is such a second import: delete it, so that the
-- grids' household totals (kept by the building triggers) are right again.
delete from building b
 using building o
 where b.external_id is not null
   and o.external_id = b.external_id
   and o.id < b.id
   and ST_Equals(o.geom, b.geom)
   and (o.floors, o.units, o.households, o.use, o.name, o.leader_name, o.leader_phone, o.source)
       is not distinct from
       (b.floors, b.units, b.households, b.use, b.name, b.leader_name, b.leader_phone, b.source);

-- Any other building sharing an external id with a lower id keeps its row but loses the id
-- (the lowest id keeps it), so that the unique index below can be built.
update building b
   set external_id = null
 where b.external_id is not null
   and exists (select 1 from building o where o.external_id = b.external_id and o.id < b.id);

create unique index building_external_id_key on building (external_id) where external_id is not null;
create unique index station_external_id_key on station (external_id) where external_id is not null;
