//! `patientflow package --out DIR [--zip]`: the deployable Function App folder (docs/deployment.md §2):
//! host.json, one `<Function>/function.json` folder per function at the root, and this executable as
//! `patientflow` (mode 0755). `--zip` also writes `DIR.zip` with Unix modes kept.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use crate::http::functions::{Function, EMBEDDED_HOST_JSON};
use crate::Outcome;

/// Options of `package`.
#[derive(Debug, Args)]
pub struct PackageArgs {
    /// Output folder (created; must be empty if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Repository folder holding host.json and functions/ (default: the current folder; the copies built
    /// into the binary are used when they are not there).
    #[arg(long, default_value = ".")]
    pub src: PathBuf,
    /// Also write a zip of the folder (`<out>.zip`), executable bit kept.
    #[arg(long)]
    pub zip: bool,
    /// Executable to package (default: this one).
    #[arg(long)]
    pub binary: Option<PathBuf>,
}

/// Builds the package.
pub async fn run(args: PackageArgs) -> anyhow::Result<Outcome> {
    let out = &args.out;
    if out.exists() {
        let mut entries =
            std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty: choose a new folder or delete it first",
                out.display()
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let from_disk = args.src.join("host.json").is_file() && args.src.join("functions").is_dir();
    if !from_disk {
        eprintln!(
            "note: no host.json + functions/ under {}; using the copies built into this binary",
            args.src.display()
        );
    }
    let host = if from_disk {
        std::fs::read_to_string(args.src.join("host.json")).context("reading host.json")?
    } else {
        EMBEDDED_HOST_JSON.to_string()
    };
    check_host_json(&host)?;
    std::fs::write(out.join("host.json"), &host).context("writing host.json")?;
    let mut names = Vec::new();
    for f in Function::ALL {
        let source = args
            .src
            .join("functions")
            .join(f.name())
            .join("function.json");
        let text = if from_disk {
            std::fs::read_to_string(&source)
                .with_context(|| format!("reading {}", source.display()))?
        } else {
            f.embedded_json().to_string()
        };
        serde_json::from_str::<serde_json::Value>(&text)
            .with_context(|| format!("{} is not JSON", source.display()))?;
        let dir = out.join(f.name());
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("function.json"), text)?;
        names.push(f.name());
    }
    if from_disk {
        // A function folder the binary does not know would be deployed without a handler.
        for entry in std::fs::read_dir(args.src.join("functions"))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().join("function.json").is_file() && !names.contains(&name.as_str()) {
                bail!("functions/{name} has no handler in this build");
            }
        }
    }
    let exe = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("locating this executable")?,
    };
    let target = out.join("patientflow");
    std::fs::copy(&exe, &target).with_context(|| format!("copying {}", exe.display()))?;
    set_executable(&target)?;
    println!(
        "packaged {} functions, host.json and {} into {}",
        names.len(),
        exe.display(),
        out.display()
    );
    if args.zip {
        let zip_path = zip_name(out);
        write_zip(out, &zip_path)?;
        println!("wrote {}", zip_path.display());
    }
    Ok(Outcome::Success)
}

fn check_host_json(text: &str) -> anyhow::Result<()> {
    let v: serde_json::Value = serde_json::from_str(text).context("host.json is not JSON")?;
    let exe = v["customHandler"]["description"]["defaultExecutablePath"]
        .as_str()
        .unwrap_or_default();
    if exe != "patientflow" {
        bail!("host.json customHandler.description.defaultExecutablePath is '{exe}', expected 'patientflow'");
    }
    Ok(())
}

#[cfg(unix)]
fn set_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))
}

#[cfg(not(unix))]
fn set_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

fn zip_name(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "package".into());
    out.with_file_name(format!("{name}.zip"))
}

/// Zips the folder's contents (paths relative to it), keeping the executable's mode.
fn write_zip(dir: &Path, zip_path: &Path) -> anyhow::Result<()> {
    use zip::write::SimpleFileOptions;
    let file = std::fs::File::create(zip_path)
        .with_context(|| format!("creating {}", zip_path.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    for rel in files {
        let path = dir.join(&rel);
        let mode = if rel == "patientflow" { 0o755 } else { 0o644 };
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode);
        zip.start_file(rel.as_str(), options)?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        zip.write_all(&bytes)?;
    }
    zip.finish()?;
    Ok(())
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        let p = entry.path();
        if p.is_dir() {
            collect(root, &p, out)?;
        } else {
            let rel = p
                .strip_prefix(root)?
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push(rel);
        }
    }
    Ok(())
}
