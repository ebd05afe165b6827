//! `init`: mark every configured sink as this repository's.

use super::Ops;
use crate::output::say;
use crate::{Out, failed};

impl Ops {
    pub(crate) async fn init(&self) -> Out<u8> {
        let ids = self
            .repo
            .init()
            .await
            .map_err(|e| failed(format!("init refused: {e}")))?;
        self.print(&ids, || {
            for i in &ids {
                match &i.problem {
                    None => say!(
                        "  [OK]   {:<12} repository {}",
                        i.sink,
                        i.repository_id.as_deref().unwrap_or("-")
                    ),
                    Some(p) => say!("  [FAIL] {:<12} {p}", i.sink),
                }
            }
        });
        Ok(u8::from(ids.iter().any(|i| !i.ok)))
    }
}
