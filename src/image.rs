//! Image assembly: the image config (base config + service settings + layer diff_ids and
//! history), the per-platform manifest and the image index, as oci-spec values.
//!
//! Pure functions: no I/O, no clock, no host facts; the epoch and platform are inputs.
//! Imports `config`, `digest`, `layer`, `platform`, `spec`.

use crate::config::Service;
use crate::digest::Digest;
use crate::platform::Platform;
use crate::spec::{rfc3339_utc, MEDIA_TYPE_CONFIG, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};
use oci_spec::image::{
    Config, Descriptor, History, ImageConfiguration, ImageIndex, ImageManifest,
    ImageManifestBuilder, MediaType,
};

/// The latest `created` time an image may have: 9999-12-31T23:59:59Z (RFC 3339 has four-digit
/// years; a later time would be written in a form no tool parses).
pub const MAX_EPOCH: u64 = 253_402_300_799;

/// One of the service's own layers, as the config records it.
#[derive(Debug, Clone)]
pub struct AddedLayer {
    /// diff_id of the layer.
    pub diff_id: String,
    /// History line (`created_by`), e.g. `ocibuild layer src/catalog/dist/linux-amd64 -> /app`.
    pub created_by: String,
}

/// The image config for `service` on `platform`, on top of `base` (None: scratch).
pub fn config(
    base: Option<&ImageConfiguration>,
    service: &Service,
    platform: &Platform,
    layers: &[AddedLayer],
    epoch: u64,
) -> ImageConfiguration {
    let created = rfc3339_utc(epoch);
    let mut img = base.cloned().unwrap_or_default();
    img.set_created(Some(created.clone()));
    img.set_os(platform.os.as_str().into());
    img.set_architecture(platform.arch.as_str().into());
    img.set_variant(platform.variant.clone());
    img.set_os_version(None);
    img.set_os_features(None);
    img.set_author(None);

    let mut c: Config = img.config().clone().unwrap_or_default();
    apply_service(&mut c, service);
    img.set_config(Some(c));

    let rootfs = img.rootfs_mut();
    rootfs.set_typ("layers".to_string());
    rootfs
        .diff_ids_mut()
        .extend(layers.iter().map(|l| l.diff_id.clone()));
    let mut history = img.history().clone().unwrap_or_default();
    for l in layers {
        let mut h = History::default();
        h.set_created(Some(created.clone()));
        h.set_created_by(Some(l.created_by.clone()));
        history.push(h);
    }
    img.set_history(Some(history));
    img
}

/// The service's runtime settings over the base's in `c`: environment, entrypoint and
/// command, working directory, user, exposed ports and labels.
fn apply_service(c: &mut Config, service: &Service) {
    let env = merged_env(c.env().clone().unwrap_or_default(), service);
    if !env.is_empty() {
        c.set_env(Some(
            env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        ));
    }
    if let Some(ep) = &service.entrypoint {
        c.set_entrypoint(Some(ep.clone()));
        // Setting an entrypoint resets the base's cmd, as a Dockerfile ENTRYPOINT does.
        c.set_cmd(None);
    }
    if let Some(cmd) = &service.cmd {
        c.set_cmd(Some(cmd.clone()));
    }
    if let Some(w) = &service.workdir {
        c.set_working_dir(Some(w.clone()));
    }
    if let Some(u) = &service.user {
        c.set_user(Some(u.clone()));
    }
    if !service.ports.is_empty() {
        let mut ports = c.exposed_ports().clone().unwrap_or_default();
        ports.extend(service.ports.iter().cloned());
        ports.sort();
        ports.dedup();
        c.set_exposed_ports(Some(ports));
    }
    if !service.labels.is_empty() {
        let mut labels = c.labels().clone().unwrap_or_default();
        labels.extend(service.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        c.set_labels(Some(labels));
    }
}

/// Environment: the `base` entries, then the service's; a key set twice keeps the later
/// value, in the place it first had.
fn merged_env(base: Vec<String>, service: &Service) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = base
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv, String::new()),
        })
        .collect();
    for (k, v) in &service.env {
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }
    env
}

/// A descriptor with media type, digest and size.
pub fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
    Descriptor::new(MediaType::from(media_type), size, digest.to_oci())
}

/// The manifest for one platform: config, then the base's layers, then the service's.
pub fn manifest(config: Descriptor, layers: Vec<Descriptor>) -> ImageManifest {
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::from(MEDIA_TYPE_MANIFEST))
        .config(config)
        .layers(layers)
        .build()
        // Cannot fail: every required field is set above.
        .unwrap_or_else(|_| unreachable!())
}

/// The config descriptor for a config blob.
pub fn config_descriptor(digest: &Digest, size: u64) -> Descriptor {
    descriptor(MEDIA_TYPE_CONFIG, digest, size)
}

/// A platform manifest as the index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The platform it serves.
    pub platform: Platform,
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's size.
    pub size: u64,
}

/// The image index over per-platform manifests, in the given order.
pub fn index(manifests: &[IndexEntry]) -> ImageIndex {
    let mut idx = ImageIndex::default();
    idx.set_schema_version(2);
    idx.set_media_type(Some(MediaType::from(MEDIA_TYPE_INDEX)));
    idx.set_manifests(
        manifests
            .iter()
            .map(|m| {
                let mut desc = descriptor(MEDIA_TYPE_MANIFEST, &m.digest, m.size);
                desc.set_platform(Some(m.platform.to_oci()));
                desc
            })
            .collect(),
    );
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BaseRef, Service};
    use crate::spec::canonical_json;

    fn service() -> Service {
        Service {
            name: "catalog".into(),
            repository: "retail-store-catalog".into(),
            paths: vec![],
            base: BaseRef::Scratch,
            entrypoint: Some(vec!["/app/catalog".into()]),
            cmd: None,
            env: [("PORT".to_string(), "8080".to_string())].into(),
            workdir: Some("/app".into()),
            user: Some("1000:1000".into()),
            ports: vec!["8080/tcp".into()],
            labels: [("a".to_string(), "b".to_string())].into(),
            layers: vec![],
        }
    }

    #[test]
    fn config_on_scratch_is_canonical_and_complete() {
        let p: Platform = "linux/arm64".parse().unwrap();
        let layers = [AddedLayer {
            diff_id: Digest::of(b"x").to_string(),
            created_by: "ocibuild layer dist -> /app".into(),
        }];
        let c = config(None, &service(), &p, &layers, 0);
        let json = String::from_utf8(canonical_json(&c).unwrap()).unwrap();
        assert_eq!(
            json,
            format!(
                concat!(
                    r#"{{"architecture":"arm64","config":{{"Entrypoint":["/app/catalog"],"Env":["PORT=8080"],"#,
                    r#""ExposedPorts":{{"8080/tcp":{{}}}},"Labels":{{"a":"b"}},"User":"1000:1000","WorkingDir":"/app"}},"#,
                    r#""created":"1970-01-01T00:00:00Z","history":[{{"created":"1970-01-01T00:00:00Z","#,
                    r#""created_by":"ocibuild layer dist -> /app"}}],"os":"linux","rootfs":{{"diff_ids":["{}"],"#,
                    r#""type":"layers"}},"variant":"v8"}}"#
                ),
                Digest::of(b"x")
            )
        );
    }

    #[test]
    fn config_merges_with_base() {
        let p: Platform = "linux/amd64".parse().unwrap();
        let base: ImageConfiguration = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","variant":"v8","config":{"Env":["PATH=/bin","PORT=1"],
            "Cmd":["sh"],"ExposedPorts":{"22/tcp":{}},"Labels":{"a":"base","keep":"1"}},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created_by":"base"}]}"#,
        )
        .unwrap();
        let c = config(Some(&base), &service(), &p, &[], 5);
        let cc = c.config().clone().unwrap();
        assert_eq!(cc.env().clone().unwrap(), ["PATH=/bin", "PORT=8080"]);
        assert_eq!(cc.cmd(), &None, "entrypoint resets the base cmd");
        assert_eq!(cc.exposed_ports().clone().unwrap(), ["22/tcp", "8080/tcp"]);
        let labels = cc.labels().clone().unwrap();
        assert_eq!(labels["a"], "b");
        assert_eq!(labels["keep"], "1");
        assert_eq!(c.variant(), &None, "variant follows the target platform");
        assert_eq!(c.rootfs().diff_ids(), &["sha256:aa".to_string()]);
        assert_eq!(c.history().as_ref().unwrap().len(), 1);
        assert_eq!(c.created().as_deref(), Some("1970-01-01T00:00:05Z"));
    }

    #[test]
    fn index_lists_platforms_in_order() {
        let entry = |p: &str, d: &[u8], size| IndexEntry {
            platform: p.parse().unwrap(),
            digest: Digest::of(d),
            size,
        };
        let idx = index(&[
            entry("linux/amd64", b"a", 10),
            entry("linux/arm64", b"b", 11),
        ]);
        let v: serde_json::Value = serde_json::from_slice(&canonical_json(&idx).unwrap()).unwrap();
        assert_eq!(v["mediaType"], MEDIA_TYPE_INDEX);
        assert_eq!(v["manifests"][1]["platform"]["variant"], "v8");
        assert_eq!(v["manifests"][0]["platform"].get("variant"), None);
        assert_eq!(v["manifests"][0]["mediaType"], MEDIA_TYPE_MANIFEST);
    }
}
