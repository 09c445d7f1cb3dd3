//! When changing the member list is safe.
//!
//! etcd commits a write when a majority (the quorum, `n / 2 + 1` of `n`
//! members) has it. The rules, checked against the member list and the
//! health measured just before the change:
//!
//! * add: the new member counts towards the quorum from `member add` on,
//!   but serves nothing until it has started and caught up. So the members
//!   healthy now must already be a quorum of the larger cluster, or the
//!   cluster stops between `member add` and the new member's start.
//! * remove: never the last member; the healthy members that remain must be
//!   a quorum of the smaller cluster (else it could not commit anything,
//!   the removal included). These two hold even with `--force`.
//! * remove down to an even count: refused without `--force`. An even count
//!   tolerates no more failures than one member fewer (4 tolerates 1, like
//!   3) while needing more members for every write, and kubeasz keeps etcd
//!   at odd counts. Removing a dead member of three is the usual reason to
//!   force it; add a member afterwards.

use std::fmt;

/// Members needed for a majority of `members`.
pub fn quorum(members: usize) -> usize {
    members / 2 + 1
}

/// Member failures `members` survive.
pub fn tolerance(members: usize) -> usize {
    members.saturating_sub(quorum(members))
}

/// Why a membership change is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Adding now would stop the cluster until the new member is up.
    AddWithoutQuorum { members: usize, healthy: usize },
    /// The only member cannot be removed.
    LastMember,
    /// The members left healthy would not be a quorum.
    RemoveWithoutQuorum {
        remaining: usize,
        healthy_remaining: usize,
    },
    /// An even member count, without `--force`.
    EvenCount { from: usize, to: usize },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refusal::AddWithoutQuorum { members, healthy } => write!(
                f,
                "only {healthy} of {members} members are healthy; with a new member the cluster needs {} \
                 before the new one has started, so adding now would stop it: bring the other members back first",
                quorum(members + 1)
            ),
            Refusal::LastMember => write!(
                f,
                "this is the only etcd member; removing it would delete the cluster's data \
                 (use `ezctl destroy` to remove the whole cluster)"
            ),
            Refusal::RemoveWithoutQuorum {
                remaining,
                healthy_remaining,
            } => write!(
                f,
                "after the removal {healthy_remaining} of the {remaining} remaining members would be healthy, \
                 fewer than the {} a quorum needs: the cluster could not commit the removal or anything after it \
                 (--force does not override this); bring members back first",
                quorum(remaining)
            ),
            Refusal::EvenCount { from, to } => write!(
                f,
                "going from {from} to {to} members leaves an even count, which tolerates no more failures \
                 ({}) than {} members while needing {} for every write; etcd clusters are kept at odd sizes. \
                 Pass --force to remove it anyway (for example a dead member) and add a member afterwards",
                tolerance(to),
                to - 1,
                quorum(to)
            ),
        }
    }
}

/// May a member be added to `members` members of which `healthy` answer?
pub fn check_add(members: usize, healthy: usize) -> Result<(), Refusal> {
    if healthy < quorum(members + 1) {
        return Err(Refusal::AddWithoutQuorum { members, healthy });
    }
    Ok(())
}

/// May one of `members` members be removed, when `healthy_remaining` of the
/// others answer?
pub fn check_remove(members: usize, healthy_remaining: usize, force: bool) -> Result<(), Refusal> {
    if members <= 1 {
        return Err(Refusal::LastMember);
    }
    let remaining = members - 1;
    if healthy_remaining < quorum(remaining) {
        return Err(Refusal::RemoveWithoutQuorum {
            remaining,
            healthy_remaining,
        });
    }
    if remaining % 2 == 0 && !force {
        return Err(Refusal::EvenCount {
            from: members,
            to: remaining,
        });
    }
    Ok(())
}

/// A warning worth printing before an add that leaves an even count.
pub fn add_warning(members: usize) -> Option<String> {
    let to = members + 1;
    (to % 2 == 0).then(|| {
        format!(
            "the cluster will have {to} members, an even count: it tolerates {} failure(s), like {} members; \
             add or remove one more to get back to an odd size",
            tolerance(to),
            to - 1
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority() {
        assert_eq!(
            (1..=7).map(quorum).collect::<Vec<_>>(),
            [1, 2, 2, 3, 3, 4, 4]
        );
        assert_eq!(
            (1..=7).map(tolerance).collect::<Vec<_>>(),
            [0, 0, 1, 1, 2, 2, 3]
        );
    }

    #[test]
    fn add_needs_the_larger_quorum_from_the_members_up_now() {
        assert_eq!(check_add(3, 3), Ok(()));
        assert_eq!(
            check_add(1, 1),
            Ok(()),
            "1 -> 2 needs both, the old one is up"
        );
        // 3 members, one down: 4 need 3, only 2 answer until the new one runs.
        assert_eq!(
            check_add(3, 2),
            Err(Refusal::AddWithoutQuorum {
                members: 3,
                healthy: 2
            })
        );
        assert_eq!(check_add(4, 3), Ok(()), "5 need 3");
        assert!(add_warning(3).is_some_and(|w| w.contains("4 members")));
        assert_eq!(add_warning(4), None);
    }

    #[test]
    fn remove_rules() {
        assert_eq!(check_remove(1, 0, true), Err(Refusal::LastMember));
        assert_eq!(check_remove(4, 3, false), Ok(()));
        assert_eq!(
            check_remove(3, 2, false),
            Err(Refusal::EvenCount { from: 3, to: 2 })
        );
        assert_eq!(
            check_remove(3, 2, true),
            Ok(()),
            "forced 3 -> 2 with both up"
        );
        // 3 members, removing a healthy one while another is down: 1 of 2 left.
        assert_eq!(
            check_remove(3, 1, true),
            Err(Refusal::RemoveWithoutQuorum {
                remaining: 2,
                healthy_remaining: 1
            })
        );
        assert_eq!(check_remove(2, 1, false), Ok(()), "2 -> 1 is odd");
        assert_eq!(
            check_remove(5, 2, true),
            Err(Refusal::RemoveWithoutQuorum {
                remaining: 4,
                healthy_remaining: 2
            })
        );
        let text = Refusal::EvenCount { from: 3, to: 2 }.to_string();
        assert!(text.contains("--force"), "{text}");
    }
}
