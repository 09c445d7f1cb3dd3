//! When changing the member list is safe.
//!
//! etcd commits a write when a majority (the quorum, `n / 2 + 1` of `n`
//! members) has it. The rules, checked against the member list and the
//! health measured just before each change:
//!
//! * parity: `hosts.yml` must list an odd number of etcd members (the
//!   inventory refuses even counts, as kubeasz does: 4 members tolerate one
//!   failure, like 3, while every write needs 3). So members are added and
//!   removed two at a time (3 -> 5 -> 3); one at a time is refused before
//!   anything is touched, because the inventory could not be written.
//! * add: the new member counts towards the quorum from `member add` on,
//!   but serves nothing until it has started and caught up. So the members
//!   healthy now must already be a quorum of the larger cluster, or the
//!   cluster stops between `member add` and the new member's start. The one
//!   exception, as in etcd itself: a single healthy member may get a second.
//! * remove: never the last member; the healthy members that remain must be
//!   a quorum of the smaller cluster (else it could not commit anything,
//!   the removal included).
//! * restart of etcd's clients (a rolling upgrade restarts every apiserver):
//!   with members down, the cluster must still survive one more failure,
//!   else the next hiccup during the work stops it. A cluster that is
//!   already below quorum is refused outright.

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
    /// The inventory would list an even number of members.
    EvenCount { from: usize, to: usize },
    /// Adding now would stop the cluster until the new member is up.
    AddWithoutQuorum { members: usize, healthy: usize },
    /// The only member(s) cannot all be removed.
    LastMember,
    /// The members left healthy would not be a quorum.
    RemoveWithoutQuorum {
        remaining: usize,
        healthy_remaining: usize,
    },
    /// Fewer healthy members than a quorum: the cluster cannot commit.
    QuorumLost { members: usize, healthy: usize },
    /// Exactly a quorum healthy: one more failure stops the cluster.
    NoMargin { members: usize, healthy: usize },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refusal::EvenCount { from, to } => write!(
                f,
                "going from {from} to {to} etcd members leaves an even count, which hosts.yml does not allow: \
                 {to} members tolerate {} failure(s), no more than {} members, while every write needs {}. \
                 Add or remove members two at a time (e.g. `ezctl add-etcd <cluster> IP1 IP2`)",
                tolerance(to),
                to.saturating_sub(1),
                quorum(to)
            ),
            Refusal::AddWithoutQuorum { members, healthy } => write!(
                f,
                "only {healthy} of {members} members are healthy; with a new member the cluster needs {} \
                 before the new one has started, so adding now would stop it: bring the other members back first",
                quorum(members + 1)
            ),
            Refusal::LastMember => write!(
                f,
                "that would leave no etcd member, deleting the cluster's data \
                 (use `ezctl destroy` to remove the whole cluster)"
            ),
            Refusal::RemoveWithoutQuorum {
                remaining,
                healthy_remaining,
            } => write!(
                f,
                "after the removal {healthy_remaining} of the {remaining} remaining members would be healthy, \
                 fewer than the {} a quorum needs: the cluster could not commit the removal or anything after it; \
                 bring members back first",
                quorum(remaining)
            ),
            Refusal::QuorumLost { members, healthy } => write!(
                f,
                "only {healthy} of {members} etcd members are healthy, fewer than the {} a quorum needs: \
                 the cluster cannot commit anything; bring members back (or restore a snapshot, see \
                 docs/operations.md) first",
                quorum(members)
            ),
            Refusal::NoMargin { members, healthy } => write!(
                f,
                "only {healthy} of {members} etcd members are healthy, exactly the {} a quorum needs: \
                 one more failure while the work restarts etcd's clients would stop the cluster; \
                 bring the other members back first",
                quorum(members)
            ),
        }
    }
}

/// May the inventory go from `from` to `to` etcd members?
pub fn check_parity(from: usize, to: usize) -> Result<(), Refusal> {
    if to == 0 {
        return Err(Refusal::LastMember);
    }
    if to & 1 == 0 {
        return Err(Refusal::EvenCount { from, to });
    }
    Ok(())
}

/// May a member be added to `members` members of which `healthy` answer?
pub fn check_add(members: usize, healthy: usize) -> Result<(), Refusal> {
    // etcd accepts a second member next to a single started one: there is
    // no way to grow a single member otherwise.
    if members == 1 && healthy == 1 {
        return Ok(());
    }
    if healthy < quorum(members + 1) {
        return Err(Refusal::AddWithoutQuorum { members, healthy });
    }
    Ok(())
}

/// May one of `members` members be removed, when `healthy_remaining` of the
/// others answer?
pub fn check_remove(members: usize, healthy_remaining: usize) -> Result<(), Refusal> {
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
    Ok(())
}

/// May etcd's clients be restarted while `healthy` of `members` answer?
/// Every member healthy is always fine (a single member included); with
/// some down, the healthy ones must outnumber the quorum.
pub fn check_margin(members: usize, healthy: usize) -> Result<(), Refusal> {
    if healthy >= members {
        return Ok(());
    }
    if healthy < quorum(members) {
        return Err(Refusal::QuorumLost { members, healthy });
    }
    if healthy == quorum(members) {
        return Err(Refusal::NoMargin { members, healthy });
    }
    Ok(())
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
    fn the_inventory_stays_odd() {
        assert_eq!(check_parity(3, 5), Ok(()));
        assert_eq!(check_parity(5, 3), Ok(()));
        assert_eq!(check_parity(3, 1), Ok(()));
        assert_eq!(
            check_parity(3, 4),
            Err(Refusal::EvenCount { from: 3, to: 4 })
        );
        assert_eq!(
            check_parity(3, 2),
            Err(Refusal::EvenCount { from: 3, to: 2 })
        );
        assert_eq!(check_parity(1, 0), Err(Refusal::LastMember));
        let text = Refusal::EvenCount { from: 3, to: 4 }.to_string();
        assert!(text.contains("two at a time"), "{text}");
    }

    #[test]
    fn add_needs_the_larger_quorum_from_the_members_up_now() {
        assert_eq!(check_add(3, 3), Ok(()));
        assert_eq!(check_add(1, 1), Ok(()), "etcd's own exception");
        assert_eq!(check_add(4, 4), Ok(()), "the second of a pair: 5 need 3");
        // 3 members, one down: 4 need 3, only 2 answer until the new one runs.
        assert_eq!(
            check_add(3, 2),
            Err(Refusal::AddWithoutQuorum {
                members: 3,
                healthy: 2
            })
        );
        assert_eq!(check_add(4, 3), Ok(()), "5 need 3");
        assert_eq!(
            check_add(2, 1),
            Err(Refusal::AddWithoutQuorum {
                members: 2,
                healthy: 1
            })
        );
    }

    #[test]
    fn remove_rules() {
        assert_eq!(check_remove(1, 0), Err(Refusal::LastMember));
        assert_eq!(check_remove(5, 4), Ok(()));
        assert_eq!(check_remove(4, 3), Ok(()), "second of a pair");
        assert_eq!(check_remove(3, 2), Ok(()));
        // 3 members, removing a healthy one while another is down: 1 of 2 left.
        assert_eq!(
            check_remove(3, 1),
            Err(Refusal::RemoveWithoutQuorum {
                remaining: 2,
                healthy_remaining: 1
            })
        );
        assert_eq!(
            check_remove(5, 2),
            Err(Refusal::RemoveWithoutQuorum {
                remaining: 4,
                healthy_remaining: 2
            })
        );
    }

    #[test]
    fn restarts_need_a_failure_to_spare() {
        assert_eq!(check_margin(1, 1), Ok(()), "a single healthy member");
        assert_eq!(check_margin(3, 3), Ok(()));
        assert_eq!(check_margin(5, 4), Ok(()), "4 of 5 still tolerate one");
        assert_eq!(
            check_margin(3, 2),
            Err(Refusal::NoMargin {
                members: 3,
                healthy: 2
            })
        );
        assert_eq!(
            check_margin(5, 3),
            Err(Refusal::NoMargin {
                members: 5,
                healthy: 3
            })
        );
        assert_eq!(
            check_margin(3, 1),
            Err(Refusal::QuorumLost {
                members: 3,
                healthy: 1
            })
        );
        assert_eq!(
            check_margin(1, 0),
            Err(Refusal::QuorumLost {
                members: 1,
                healthy: 0
            })
        );
        let text = Refusal::NoMargin {
            members: 3,
            healthy: 2,
        }
        .to_string();
        assert!(text.contains("exactly the 2 a quorum needs"), "{text}");
    }
}
