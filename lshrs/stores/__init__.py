"""Document stores: one module per backend, all following `lshrs.stores.base.Store`."""
