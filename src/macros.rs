//! Macros shared by the services of this crate.

/// `get_ref`, `get_mut` and `into_inner` for a service whose inner service is the field `inner`
/// (the accessors tower-http gives each of its middleware).
macro_rules! inner_service_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consumes `self`, returning the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}
