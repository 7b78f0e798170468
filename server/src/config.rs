//! Command line and environment: every flag can also be given as an environment variable, and
//! every one has a default that runs the demo on this machine without a config file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// gridmap — tiles, features, grid editing and mobile-probe reports for urban grid governance.
#[derive(Debug, Parser)]
#[command(name = "gridmap", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// PostgreSQL (with PostGIS) connection URL. The default talks plain TCP to the loopback,
    /// where TLS protects nothing and costs a fifth of intake throughput; for a database on
    /// another host give `?sslmode=verify-full` (or at least `require`).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/gridmap?sslmode=disable",
        global = true
    )]
    pub database_url: String,
    /// Largest number of pooled database connections.
    #[arg(long, env = "GRIDMAP_DB_POOL", default_value_t = 16, global = true)]
    pub db_pool: u32,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations, then serve HTTP until SIGTERM / Ctrl-C.
    Serve(ServeArgs),
    /// Apply the embedded migrations and exit.
    Migrate,
    /// Load the synthetic demo city (idempotent).
    Seed(SeedArgs),
    /// Import a GeoJSON FeatureCollection in one transaction.
    Import(ImportArgs),
    /// Write a PMTiles v3 archive of the vector tiles (for a static host or CDN).
    ExportTiles(ExportTilesArgs),
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage static API keys for integrations (Open311 clients, desktop GIS).
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "GRIDMAP_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Folder with the built web map (web-map/dist); served at `/`.
    #[arg(long, env = "GRIDMAP_WEB_DIR", default_value = "web-map/dist")]
    pub web_dir: PathBuf,
    /// Load the demo city first when the database holds no grids.
    #[arg(long, env = "GRIDMAP_SEED_DEMO_IF_EMPTY", default_value_t = false)]
    pub seed_demo_if_empty: bool,
    /// Seconds to keep serving after SIGTERM with `/readyz` answering 503, so a load balancer
    /// takes the instance out before it stops accepting (docs/deploy.md). 0: stop at once.
    #[arg(long, env = "GRIDMAP_DRAIN_SECONDS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub drain_seconds: u64,
    #[command(flatten)]
    pub tiles: TileArgs,
}

/// Vector tile settings (`/tiles/…`).
#[derive(Debug, Clone, Args)]
pub struct TileArgs {
    /// The URL clients reach this server at, for every absolute URL (TileJSON, style, OGC links, Open311 discovery; default: the request's Host).
    #[arg(long, env = "GRIDMAP_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Optional raster basemap XYZ URL template drawn under the data in /tiles/style.json (none: fully offline).
    #[arg(long, env = "GRIDMAP_BASEMAP_URL")]
    pub basemap_url: Option<String>,
    /// Upper bound of the in-memory tile cache, in MiB of compressed tiles.
    #[arg(long, env = "GRIDMAP_TILE_CACHE_MB", default_value_t = 256)]
    pub tile_cache_mb: u64,
    /// Tile renders running in PostgreSQL at once (a dedicated pool of this size).
    #[arg(long, env = "GRIDMAP_TILE_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub tile_concurrency: u32,
    /// Statement timeout of one tile render, in milliseconds.
    #[arg(long, env = "GRIDMAP_TILE_TIMEOUT_MS", default_value_t = 5000)]
    pub tile_timeout_ms: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ExportTilesArgs {
    /// Comma list of layers: grids, buildings, stations, roads.
    #[arg(long, default_value = "grids,buildings,stations")]
    pub layers: String,
    /// Lowest zoom written.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=22))]
    pub minzoom: u8,
    /// Highest zoom written.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(0..=22))]
    pub maxzoom: u8,
    /// Tile renders running at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u32,
    /// Print the tile SQL for this zoom (binds $1 z, $2 x, $3 y) and exit; bench/tiles.sh uses it
    /// to measure the PostGIS floor.
    #[arg(long, hide = true)]
    pub print_sql: Option<u8>,
    /// The archive to write (replaced if it exists).
    #[arg(default_value = "tiles.pmtiles")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Load the synthetic Yiyuan county-seat demo city.
    #[arg(long, required = true)]
    pub demo: bool,
    /// How many counties: Yiyuan plus N − 1 synthetic copies, each its own county of 267 grids
    /// (10 → 2,670 grids; 100 → 26,700 grids, ~1.6 M buildings) for benchmarks.
    #[arg(long, env = "GRIDMAP_SEED_SCALE", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub scale: u32,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ImportTarget {
    Grids,
    Buildings,
    Stations,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// What the file holds.
    #[arg(value_enum)]
    pub target: ImportTarget,
    /// A GeoJSON FeatureCollection in EPSG:4326 (CGCS2000 accepted as equal), or any file GDAL
    /// reads (`.osm.pbf`, GeoPackage, Shapefile…), converted by `ogr2ogr`.
    pub file: PathBuf,
    /// Accept features outside the county's bounding box (e.g. another city's data).
    #[arg(long)]
    pub allow_outside_county: bool,
    /// Label stored in each row's `source` column.
    #[arg(long, default_value = "import")]
    pub source: String,
    /// The property holding each building's or station's external id, by which a re-import
    /// updates the row it stored before (default: `external_id`, else the OSM id).
    #[arg(long, value_name = "NAME")]
    pub id_property: Option<String>,
    /// All or nothing for buildings and stations too: the first feature that would be repaired,
    /// skipped or read leniently rejects the whole file (grids always are all or nothing).
    #[arg(long)]
    pub strict: bool,
    /// The layer to read from a file GDAL reads (default: OSM `multipolygons` for buildings,
    /// `points` for stations; the only layer of other files).
    #[arg(long)]
    pub layer: Option<String>,
}

/// One role type for the CLI, the database and the API (see `auth::Role`).
pub use crate::auth::Role;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (or reset its password and role if the name exists).
    Add {
        /// The account's role.
        #[arg(long, value_enum)]
        role: Role,
        /// Login name.
        #[arg(long)]
        name: String,
        /// Read the password from standard input (first line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Mark a rider as a part-time grid worker (a "mobile probe").
        #[arg(long)]
        part_time_grid_worker: bool,
        /// Assign the account to this grid (code, e.g. LS-001); repeatable.
        #[arg(long = "grid")]
        grids: Vec<String>,
        /// The name public views show (a grid card, a report's receipt); without one they show
        /// a neutral label (网格员), never the login name.
        #[arg(long)]
        display_name: Option<String>,
        /// Link a station host to the station it keeps (station id).
        #[arg(long)]
        station: Option<i64>,
        /// A resident's home building (building id): the building their own micro-wishes are for.
        #[arg(long)]
        building: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Make a key and print it once (only its hash is kept).
    Add {
        /// The client's name, e.g. `fixmystreet-zibo`.
        name: String,
        /// Act for this existing account (login name); by default the key gets an account of
        /// its own, named like the key, role resident, that cannot log in.
        #[arg(long)]
        account: Option<String>,
        /// What the key may do; repeatable.
        #[arg(long = "scope", value_enum, default_values_t = [crate::api_keys::Scope::Open311])]
        scopes: Vec<crate::api_keys::Scope>,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by name; it stops working on the next request.
    Revoke {
        /// The key's name.
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command, Role, UserCommand};

    #[test]
    fn user_add_takes_the_role_names_of_the_contract() {
        for (name, role) in [
            ("rider", Role::Rider),
            ("grid_worker", Role::GridWorker),
            ("planner", Role::Planner),
            ("admin", Role::Admin),
            ("building_leader", Role::BuildingLeader),
            ("station_host", Role::StationHost),
            ("merchant", Role::Merchant),
            ("volunteer", Role::Volunteer),
        ] {
            let cli =
                Cli::try_parse_from(["gridmap", "user", "add", "--role", name, "--name", "x1", "--password-stdin"])
                    .unwrap_or_else(|e| panic!("--role {name}: {e}"));
            let Command::User { command: UserCommand::Add { role: parsed, .. } } = cli.command else {
                panic!("not user add")
            };
            assert_eq!(parsed, role);
            assert_eq!(parsed.as_str(), name);
        }
    }
}
