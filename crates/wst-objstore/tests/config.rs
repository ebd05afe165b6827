//! Sink configuration from TOML: the doctrine's C:, D: and offsite sinks.

use std::collections::BTreeMap;

use wst_core::Medium;
use wst_objstore::SinkConfig;

fn parse(text: &str) -> Result<BTreeMap<String, SinkConfig>, toml::de::Error> {
    #[derive(serde::Deserialize)]
    struct File {
        sinks: BTreeMap<String, SinkConfig>,
    }
    toml::from_str::<File>(text).map(|f| f.sinks)
}

#[tokio::test]
async fn doctrine_layout_from_toml() {
    let c = tempfile::tempdir().unwrap();
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[sinks.local-c]
kind = "local_disk"
path = '{}'

[sinks.mirror-d]
kind = "local_disk"
path = '{}'
stale_temp_age_secs = 3600

[sinks.offsite-s3]
kind = "object_store"
url = "s3://wst-backups/prod"
offsite = true
from_env = false
part_size = 33554432
options = {{ aws_region = "eu-west-1", aws_access_key_id = "AKIDEXAMPLE", aws_secret_access_key = "do-not-print-me" }}
"#,
        c.path().display(),
        d.path().display()
    );
    let sinks = parse(&text).unwrap();
    let shown = format!("{sinks:?}");
    assert!(!shown.contains("do-not-print-me"), "{shown}");
    assert!(shown.contains("aws_region=eu-west-1"), "{shown}");

    let mut infos = Vec::new();
    for (name, config) in &sinks {
        let sink = config.open(name).await.unwrap();
        infos.push(sink.info().clone());
    }
    let summary: Vec<(&str, Medium, bool)> = infos
        .iter()
        .map(|i| (i.name.as_str(), i.medium, i.offsite))
        .collect();
    assert_eq!(
        summary,
        [
            ("local-c", Medium::Disk, false),
            ("mirror-d", Medium::Disk, false),
            ("offsite-s3", Medium::ObjectStorage, true),
        ]
    );
}

#[test]
fn typos_are_rejected() {
    let err = parse(
        r#"
[sinks.offsite]
kind = "object_store"
url = "s3://b"
offiste = true
"#,
    )
    .expect_err("unknown field must fail");
    assert!(err.to_string().contains("offiste"), "{err}");

    let err =
        parse("[sinks.x]\nkind = \"tape\"\npath = \"/x\"\n").expect_err("unknown kind must fail");
    assert!(err.to_string().contains("tape"), "{err}");
}
