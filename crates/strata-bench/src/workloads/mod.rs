//! The workload registry.
//!
//! Each module `foo` holds `pub fn register(v: &mut Vec<Workload>)` pushing its
//! workloads, named `"foo/..."`. Adding a module is one line: its name in the list
//! given to `workload_modules!` below.

use crate::harness::Workload;

macro_rules! workload_modules {
    ($($module:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every registered workload, in report order (module order, then registration
        /// order).
        pub fn all() -> Vec<Workload> {
            let mut v = Vec::new();
            $($module::register(&mut v);)*
            v
        }
    };
}

workload_modules! {
    baseline,
    reclaim,
    queue,
    deque,
    sync,
    lock,
    pool,
    r#async,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn registry_is_well_formed() {
        let all = all();
        let mut names = HashSet::new();
        for w in &all {
            assert!(names.insert(w.name), "duplicate workload {}", w.name);
            let (group, rest) = w.name.split_once('/').expect("name is group/name");
            assert!(!group.is_empty() && !rest.is_empty() && !w.name.contains(char::is_whitespace));
            assert!(
                !w.help.is_empty() && !w.help.contains('\n'),
                "{}: one-sentence help",
                w.name
            );
            assert!(!w.unit.is_empty());
            assert!(w.min_threads >= 1, "{}", w.name);
            assert!(
                w.max_threads.is_none_or(|max| max >= w.min_threads),
                "{}: empty thread range",
                w.name
            );
            assert!(!w.impls.is_empty(), "{}", w.name);
            let mut impls = HashSet::new();
            for i in &w.impls {
                assert!(
                    impls.insert(i.name),
                    "{}: duplicate impl {}",
                    w.name,
                    i.name
                );
                assert!(!i.name.is_empty() && !i.name.contains(char::is_whitespace));
            }
        }
    }

    #[test]
    fn fixed_paths_run() {
        for w in all() {
            for i in &w.impls {
                if let Some(f) = &i.fixed {
                    f(1000);
                }
            }
        }
    }
}
