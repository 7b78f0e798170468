-- The live feed (GET /api/reports/stream) tells workers about re-assigned reports too: when a
-- grid is re-drawn — through the API, an import or plain SQL — the open reports that change
-- grid are announced on `gridmap_reports_reassigned` with the range of history ids this call
-- wrote (`{"first": …, "last": …}`). NOTIFY is delivered at commit, so a server reads exactly
-- committed moves; a payload names a range, not every id, because a re-drawn district can move
-- thousands of reports and a payload holds 8,000 bytes. The body is 0004's, plus the range.
create or replace function gridmap_reassign_reports(area geometry) returns integer language plpgsql as $$
declare
    moved integer := 0;
    r record;
    a record;
    event_id bigint;
    first_event bigint;
begin
    if area is null then
        return 0;
    end if;
    for r in select id, geom, grid_id, assignment, status from report
              where geom && ST_Expand(area, 0.002) and status not in ('cancelled', 'closed')
              for update
    loop
        a := gridmap_report_assignment(r.geom);
        if a.grid_id is distinct from r.grid_id or a.assignment <> r.assignment then
            update report set grid_id = a.grid_id, assignment = a.assignment, subdistrict_id = a.subdistrict_id,
                   version = version + 1
             where id = r.id;
            insert into report_event (report_id, action, from_status, to_status, actor, note, grid_id)
            values (r.id, 'reassign', r.status, r.status, gridmap_actor(),
                    format('grid changed: %s -> %s (%s)', coalesce(r.grid_id::text, 'none'),
                           coalesce(a.grid_id::text, 'none'), a.assignment),
                    a.grid_id)
            returning id into event_id;
            first_event := coalesce(first_event, event_id);
            moved := moved + 1;
        end if;
    end loop;
    if moved > 0 then
        perform pg_notify('gridmap_reports_reassigned',
                          json_build_object('first', first_event, 'last', event_id)::text);
    end if;
    return moved;
end $$;
