//! What each subcommand does. Start-up failures surface as one `anyhow` line in `main`.

use std::io::BufRead;

use anyhow::{Context, bail};

use crate::config::{ApikeyCommand, Cli, Command, UserCommand};
use crate::http::{self, AppState};
use crate::{accounts, api_keys, db, export, import, seed};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let pool = db::connect_and_migrate_as(&cli.db, db::Session::Server).await?;
            if args.seed_demo_if_empty && !seed::has_grids(&pool).await? {
                seed::seed_demo(&pool, 1).await?;
            }
            let mut state = AppState::new(pool.clone());
            state.web_dir = args.web_dir;
            state.tiles = export::tile_service(&pool, &args.tiles);
            state.urls =
                http::urls::PublicUrls::new(args.tiles.public_url.as_deref(), args.tiles.basemap_url.as_deref());
            // Keeps the cache current for SQL done behind the server's back (migration 0002).
            let _listener = gridmap_tiles::spawn_listener(state.tiles.clone(), pool);
            let _day_turns = gridmap_tiles::spawn_day_turns(state.tiles.clone());
            let tiles = state.tiles.clone();
            tokio::spawn(async move {
                tiles.warm_up().await;
                tiles.preload(std::time::Duration::from_secs(10)).await;
            });
            http::serve(state, args.listen, std::time::Duration::from_secs(args.drain_seconds)).await
        }
        Command::Migrate => {
            db::connect_and_migrate(&cli.db).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Seed(args) => {
            let pool = db::connect_and_migrate(&cli.db).await?;
            seed::seed_demo(&pool, args.scale).await
        }
        Command::Import(args) => {
            let pool = db::connect_and_migrate(&cli.db).await?;
            let options = import::ImportOptions {
                target: args.target,
                allow_outside_county: args.allow_outside_county,
                source: args.source,
                id_property: args.id_property,
                strict: args.strict,
            };
            let report = import::import_file(&pool, &args.file, args.layer.as_deref(), &options).await?;
            println!("{report}");
            Ok(())
        }
        Command::ExportTiles(args) if args.print_sql.is_some() => {
            let layers = gridmap_tiles::LayerSet::parse(&args.layers).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", layers.sql(args.print_sql.unwrap_or_default()));
            Ok(())
        }
        Command::ExportTiles(args) => {
            let pool = db::connect_and_migrate(&cli.db).await?;
            let report = export::export_pmtiles(&pool, &args).await?;
            println!("{report}");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    role,
                    name,
                    password_stdin,
                    part_time_grid_worker,
                    grids,
                    display_name,
                    station,
                    building,
                },
        } => {
            if !password_stdin {
                bail!("pass the password on standard input with --password-stdin");
            }
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let pool = db::connect_and_migrate(&cli.db).await?;
            let new = accounts::NewAccount { name: &name, role, password, part_time_grid_worker, grid_codes: &grids };
            let id = accounts::upsert(&pool, &new).await?;
            if let Some(display_name) = &display_name {
                accounts::set_display_name(&pool, id, display_name).await?;
            }
            if let Some(station) = station {
                accounts::set_station(&pool, id, station).await?;
            }
            if let Some(building) = building {
                accounts::set_building(&pool, id, building).await?;
            }
            println!("account {name} (id {id}, role {}) saved", role.as_str());
            Ok(())
        }
        Command::Apikey { command } => apikey(&cli.db, command).await,
    }
}

async fn apikey(db_args: &crate::config::DbArgs, command: ApikeyCommand) -> anyhow::Result<()> {
    let pool = db::connect_and_migrate(db_args).await?;
    match command {
        ApikeyCommand::Add { name, account, scopes } => {
            let acts_for = account.as_deref().map_or(api_keys::ActsFor::Own, api_keys::ActsFor::Name);
            let created = api_keys::create(&pool, &name, acts_for, &scopes).await?;
            let v = &created.view;
            eprintln!(
                "api key {} (id {}) acts for account {} with scopes {}; it is shown only now:",
                v.name,
                v.id,
                v.account_name,
                v.scopes.join(",")
            );
            println!("{}", created.key);
        }
        ApikeyCommand::List => {
            for v in api_keys::list(&pool).await? {
                let used = v.last_used_at.map_or_else(|| "never used".to_string(), |t| format!("last used {t}"));
                let state = v.revoked_at.map_or_else(|| "active".to_string(), |t| format!("revoked {t}"));
                println!("{}\t{}\taccount {}\t{}\t{used}\t{state}", v.id, v.name, v.account_name, v.scopes.join(","));
            }
        }
        ApikeyCommand::Revoke { name } => match api_keys::revoke_by_name(&pool, &name).await? {
            Some(v) => println!("api key {} revoked", v.name),
            None => bail!("no api key named {name}"),
        },
    }
    Ok(())
}
