//! Include and exclude patterns for selective restore and filtered listings: archive roots
//! (`wst-api/`), exact paths and globs (`wst-api/config/**`, `**/*.json`).

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::manifest::{Manifest, ManifestEntry};

/// Include (and optionally exclude) patterns over archive paths (relative, `/`-separated).
///
/// Pattern forms (matched against archive paths such as `wst-api/config/app.json`):
/// - a root or directory, `wst-api/` or `wst-api` — that entry and everything beneath it;
/// - an exact path, `wst-api/config/app.json`;
/// - a glob (the `globset` syntax): `*` and `?` never cross `/`, `**` spans directories
///   (`**/*.json` matches `a.json` and `x/y/a.json`), `[ab]`, `{a,b}`, and `\` escapes.
///
/// A pattern matches an entry when it matches the entry's path **or one of its parent
/// directories**: matching a directory covers its whole subtree, as `tar -x member` and
/// `restic restore --include/--exclude` do. An entry is selected when an include pattern
/// matches it (or there are no include patterns) and no exclude pattern does. A leading `./`
/// and a trailing `/` are ignored.
#[derive(Debug, Clone)]
pub struct Selection {
    patterns: Vec<String>,
    set: Option<GlobSet>,
    excludes: Vec<String>,
    exclude_set: Option<GlobSet>,
}

impl Selection {
    /// Selects what the include `patterns` match (at least one).
    ///
    /// # Errors
    /// [`Error::Config`] for an empty list, an empty or absolute pattern, a `..` component, a
    /// `\` path separator (archive paths use `/`, also on Windows), or an invalid glob — each
    /// naming the pattern.
    pub fn new<I, S>(patterns: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let (patterns, set) = compile(patterns, "include")?;
        if patterns.is_empty() {
            return Err(Error::Config(
                "a selection needs at least one include pattern".into(),
            ));
        }
        Ok(Self {
            patterns,
            set: Some(set),
            excludes: Vec::new(),
            exclude_set: None,
        })
    }

    /// Selects every entry (use [`Selection::exclude`] to leave some out).
    pub fn all() -> Self {
        Self {
            patterns: Vec::new(),
            set: None,
            excludes: Vec::new(),
            exclude_set: None,
        }
    }

    /// Leaves out what the exclude `patterns` match (added to any given before). An exclude
    /// pattern that matches nothing is not an error: it cannot make a restore silently empty.
    ///
    /// # Errors
    /// [`Error::Config`] as for [`Selection::new`].
    pub fn exclude<I, S>(mut self, patterns: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut all = std::mem::take(&mut self.excludes);
        all.extend(patterns.into_iter().map(|p| p.as_ref().to_owned()));
        let (excludes, set) = compile(&all, "exclude")?;
        self.exclude_set = (!excludes.is_empty()).then_some(set);
        self.excludes = excludes;
        Ok(self)
    }

    /// The include patterns as given (empty: everything not excluded).
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// The exclude patterns as given.
    pub fn excludes(&self) -> &[String] {
        &self.excludes
    }

    /// Whether the entry at archive path `path` is selected.
    pub fn matches(&self, path: &str) -> bool {
        let excluded = self
            .exclude_set
            .as_ref()
            .is_some_and(|x| prefixes(path).any(|p| x.is_match(p)));
        !excluded
            && self
                .set
                .as_ref()
                .is_none_or(|set| prefixes(path).any(|p| set.is_match(p)))
    }

    /// Like [`Selection::matches`], also setting `hit[i]` for every include pattern `i` that
    /// selected it (`hit` has one slot per include pattern).
    pub(crate) fn mark(&self, path: &str, hit: &mut [bool]) -> bool {
        if !self.matches(path) {
            return false;
        }
        if let Some(set) = &self.set {
            for p in prefixes(path) {
                for i in set.matches(p) {
                    hit[i] = true;
                }
            }
        }
        true
    }

    /// The manifest entries selected, in archive order.
    pub fn filter<'m>(&self, manifest: &'m Manifest) -> Vec<&'m ManifestEntry> {
        manifest
            .entries
            .iter()
            .filter(|e| self.matches(&e.path))
            .collect()
    }

    /// The include patterns (as given) that select no entry of `manifest` (an entry they match
    /// but an exclude pattern leaves out does not count).
    pub fn unmatched(&self, manifest: &Manifest) -> Vec<String> {
        let mut hit = vec![false; self.patterns.len()];
        for e in &manifest.entries {
            self.mark(&e.path, &mut hit);
        }
        self.unmatched_of(&hit)
    }

    pub(crate) fn unmatched_of(&self, hit: &[bool]) -> Vec<String> {
        self.patterns
            .iter()
            .zip(hit)
            .filter(|(_, h)| !**h)
            .map(|(p, _)| p.clone())
            .collect()
    }
}

/// Validates and compiles patterns; `what` (`include`/`exclude`) names them in errors.
fn compile<I, S>(patterns: I, what: &str) -> Result<(Vec<String>, GlobSet)>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut kept = Vec::new();
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let given = p.as_ref();
        let bad = |why: &str| Error::Config(format!("{what} pattern `{given}`: {why}"));
        let norm = given.trim();
        let norm = norm.strip_prefix("./").unwrap_or(norm);
        let norm = norm.trim_end_matches('/');
        if norm.is_empty() {
            return Err(bad("empty (give a root such as `wst-api/` or a glob)"));
        }
        if norm.starts_with('/') || norm.as_bytes().get(1) == Some(&b':') {
            return Err(bad(
                "archive paths are relative (e.g. `wst-api/config/**`), not absolute",
            ));
        }
        if norm.split('/').any(|c| c == "..") {
            return Err(bad("`..` components are not allowed"));
        }
        if norm.contains('\\') && !norm.contains('/') && !has_glob_meta(norm) {
            return Err(bad(
                "archive paths use `/` as the separator, also on Windows",
            ));
        }
        let glob = GlobBuilder::new(norm)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| bad(&e.kind().to_string()))?;
        builder.add(glob);
        kept.push(given.to_owned());
    }
    let set = builder
        .build()
        .map_err(|e| Error::Config(format!("{what} patterns: {e}")))?;
    Ok((kept, set))
}

fn has_glob_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// `a`, `a/b`, `a/b/c` for `a/b/c`.
fn prefixes(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .map(move |(i, _)| &path[..i])
        .chain(std::iter::once(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{Just, Strategy};

    fn sel(p: &[&str]) -> Selection {
        Selection::new(p).unwrap()
    }

    #[test]
    fn roots_select_their_subtree_only() {
        for s in [sel(&["wst-api/"]), sel(&["wst-api"]), sel(&["./wst-api/"])] {
            assert!(s.matches("wst-api"));
            assert!(s.matches("wst-api/config/app.json"));
            assert!(!s.matches("wst-apix/a"));
            assert!(!s.matches("wst/wst-api"));
            assert!(!s.matches("wst_dev_database.backup"));
        }
    }

    #[test]
    fn globs_do_not_cross_separators_except_double_star() {
        let s = sel(&["wst-api/config/*"]);
        assert!(s.matches("wst-api/config/app.json"));
        assert!(
            s.matches("wst-api/config/sub/deep.txt"),
            "a matched directory selects its subtree"
        );
        assert!(!s.matches("wst-api/config"));
        assert!(!s.matches("wst-api/other/app.json"));
        let j = sel(&["**/*.json"]);
        assert!(j.matches("a.json"));
        assert!(j.matches("wst-api/config/app.json"));
        assert!(!j.matches("wst-api/config/app.jsonx"));
        assert!(!j.matches("wst-api/config"));
        let q = sel(&["wst/?.txt", "wst/{a,b}/**"]);
        assert!(q.matches("wst/x.txt") && !q.matches("wst/xy.txt"));
        assert!(q.matches("wst/b/c/d") && !q.matches("wst/c/d"));
    }

    #[test]
    fn marks_which_patterns_matched() {
        let s = sel(&["wst/", "**/*.json", "nothing/**"]);
        let mut hit = vec![false; 3];
        assert!(s.mark("wst/a.json", &mut hit));
        assert!(!s.mark("other/a.txt", &mut hit));
        assert_eq!(hit, [true, true, false]);
        assert_eq!(s.unmatched_of(&hit), ["nothing/**"]);
    }

    fn arb_path() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::collection::vec("[a-c]{1,2}(\\.json)?", 1..5).prop_map(|v| v.join("/"))
    }

    proptest::proptest! {
        /// A root selects exactly itself and the paths beneath it, never a sibling sharing
        /// its name as a prefix.
        #[test]
        fn a_root_selects_exactly_its_subtree(root in arb_path(), path in arb_path()) {
            let s = Selection::new([format!("{root}/")]).unwrap();
            let inside = path == root || path.starts_with(&format!("{root}/"));
            proptest::prop_assert_eq!(s.matches(&path), inside);
        }

        /// Whatever the patterns, a selected directory's descendants are selected too (a
        /// restored directory is never missing its contents).
        #[test]
        fn selection_is_closed_under_descendants(
            patterns in proptest::collection::vec(
                proptest::prop_oneof![arb_path(), Just("**/*.json".to_owned()), Just("a/*".to_owned())],
                1..3,
            ),
            dir in arb_path(),
            rest in arb_path(),
        ) {
            let s = Selection::new(&patterns).unwrap();
            if s.matches(&dir) {
                let child = format!("{dir}/{rest}");
                proptest::prop_assert!(s.matches(&child));
            }
        }
    }

    #[test]
    fn excludes_cut_subtrees_out_of_includes_or_of_everything() {
        let s = sel(&["wst-api/"])
            .exclude(["wst-api/config/secrets/", "**/*.log"])
            .unwrap();
        assert!(s.matches("wst-api/config/app.json"));
        assert!(!s.matches("wst-api/config/secrets"));
        assert!(!s.matches("wst-api/config/secrets/key.pem"));
        assert!(!s.matches("wst-api/logs/a.log"));
        assert!(!s.matches("wst/index.html"));
        assert_eq!(s.excludes(), ["wst-api/config/secrets/", "**/*.log"]);
        let all = Selection::all()
            .exclude(["wst_dev_database.backup"])
            .unwrap();
        assert!(all.matches("wst/index.html"));
        assert!(!all.matches("wst_dev_database.backup"));
        assert!(all.patterns().is_empty());
        // An include whose every match is excluded selects nothing.
        let none = sel(&["wst-api/config/secrets/"])
            .exclude(["wst-api/config/secrets"])
            .unwrap();
        let mut hit = vec![false];
        assert!(!none.mark("wst-api/config/secrets/key.pem", &mut hit));
        assert_eq!(none.unmatched_of(&hit), ["wst-api/config/secrets/"]);
        assert!(matches!(
            Selection::all().exclude(["../x"]),
            Err(Error::Config(m)) if m.starts_with("exclude pattern `../x`")
        ));
    }

    #[test]
    fn bad_patterns_are_refused_by_name() {
        for bad in [
            "",
            "/",
            "/etc/passwd",
            "C:/x",
            "wst/../etc",
            "wst\\api",
            "a/[z",
        ] {
            match Selection::new([bad]) {
                Err(Error::Config(m)) => assert!(m.contains(&format!("`{bad}`")), "{m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(
            Selection::new(Vec::<String>::new()),
            Err(Error::Config(_))
        ));
    }
}
