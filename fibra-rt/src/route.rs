//! Routes: which plugin serves which op type, collected by a [`Router`].

use std::any::TypeId;
use std::fmt;
use std::marker::PhantomData;

use crate::wait::{submit_erased, SubmitFn};
use crate::{Op, Plugin, Serves};

/// One op type's way to its plugin.
#[derive(Clone, Copy)]
pub(crate) struct Route {
    pub(crate) type_id: TypeId,
    pub(crate) name: &'static str,
    pub(crate) plugin: usize,
    pub(crate) submit: SubmitFn,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("op", &self.name)
            .field("plugin", &self.plugin)
            .finish()
    }
}

/// The route last used by each of a few op types, by a hash of the type: a yield finds its
/// route with one comparison of type ids, however many op types the plugins serve (a
/// search compared them one by one: with a dozen network ops, a stackless session that
/// yields four kinds of op in turn spent a sixth of its instructions there).
pub(crate) struct RouteCache {
    slots: [(TypeId, usize); ROUTE_CACHE],
}

/// Slots in a [`RouteCache`]: a power of two.
const ROUTE_CACHE: usize = 32;

impl RouteCache {
    /// A cache whose slots all hold route `index` of `type_id` (a route that exists: the
    /// park's).
    pub(crate) fn new(type_id: TypeId, index: usize) -> RouteCache {
        RouteCache {
            slots: [(type_id, index); ROUTE_CACHE],
        }
    }

    /// The index in `routes` of the route of `type_id`, if there is one.
    #[inline]
    pub(crate) fn find(&mut self, routes: &[Route], type_id: TypeId) -> Option<usize> {
        let slot = &mut self.slots[bucket(type_id)];
        if slot.0 == type_id {
            return Some(slot.1);
        }
        let index = routes.iter().position(|r| r.type_id == type_id)?;
        *slot = (type_id, index);
        Some(index)
    }
}

/// The cache slot of `type_id`: a type id is a hash already, so its low bits serve.
#[inline]
fn bucket(type_id: TypeId) -> usize {
    /// Keeps what a type id writes (its hash's low 64 bits, in today's std), folded.
    struct Fold(u64);
    impl std::hash::Hasher for Fold {
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
        fn write_u64(&mut self, v: u64) {
            self.0 ^= v;
        }
        fn finish(&self) -> u64 {
            self.0
        }
    }
    let mut fold = Fold(0);
    std::hash::Hash::hash(&type_id, &mut fold);
    let h = fold.0 ^ (fold.0 >> 32);
    (h as usize) & (ROUTE_CACHE - 1)
}

/// Collects the op types a plugin serves; passed to [`Plugin::register`].
pub struct Router<P> {
    pub(crate) routes: Vec<Route>,
    pub(crate) plugin: usize,
    _plugin: PhantomData<fn(P)>,
}

impl<P> fmt::Debug for Router<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.routes)
            .finish()
    }
}

impl<P: Plugin> Router<P> {
    pub(crate) fn new(plugin: usize) -> Self {
        Router {
            routes: Vec::new(),
            plugin,
            _plugin: PhantomData,
        }
    }

    /// Routes op type `O` to this plugin.
    pub fn op<O: Op>(&mut self) -> &mut Self
    where
        P: Serves<O>,
    {
        self.routes.push(Route {
            type_id: TypeId::of::<O>(),
            name: std::any::type_name::<O>(),
            plugin: self.plugin,
            submit: submit_erased::<P, O>,
        });
        self
    }
}
