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
