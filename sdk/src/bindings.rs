//! Guest bindings of the four worlds; shared interfaces are generated once
//! (in `router`) and reused, so one `CallInfo` type serves every world.

pub mod router {
    wit_bindgen::generate!({
        world: "router",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_router",
        default_bindings_module: "ctihost_sdk::bindings::router",
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

pub mod screen_pop {
    wit_bindgen::generate!({
        world: "screen-pop",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_screen_pop",
        default_bindings_module: "ctihost_sdk::bindings::screen_pop",
        with: {
            "cti:plugin/types@0.1.0": crate::bindings::router::cti::plugin::types,
            "cti:plugin/host@0.1.0": crate::bindings::router::cti::plugin::host,
            "cti:plugin/crm@0.1.0": crate::bindings::router::cti::plugin::crm,
        },
    });
}

pub mod crm_connector {
    wit_bindgen::generate!({
        world: "crm-connector",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_crm_connector",
        default_bindings_module: "ctihost_sdk::bindings::crm_connector",
        with: {
            "cti:plugin/types@0.1.0": crate::bindings::router::cti::plugin::types,
            "cti:plugin/host@0.1.0": crate::bindings::router::cti::plugin::host,
        },
    });
}

pub mod recording_policy {
    wit_bindgen::generate!({
        world: "recording-policy",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_recording_policy",
        default_bindings_module: "ctihost_sdk::bindings::recording_policy",
        with: {
            "cti:plugin/types@0.1.0": crate::bindings::router::cti::plugin::types,
            "cti:plugin/host@0.1.0": crate::bindings::router::cti::plugin::host,
        },
    });
}
