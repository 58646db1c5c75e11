//! The host side of the `host`, `crm` and `http` interfaces.

use super::bindings::crm_connector::cti::plugin::http;
use super::bindings::router::cti::plugin::{crm, host, types};
use super::bindings::{CrmError, Customer, LogLevel, LookupKey};
use super::sandbox::InvocationState;

const MAX_KV_KEY: usize = 256;
const MAX_KV_VALUE: usize = 64 * 1024;

impl types::Host for InvocationState {}

impl host::Host for InvocationState {
    async fn log(&mut self, level: LogLevel, message: String, fields: Vec<(String, String)>) {
        let level = match level {
            LogLevel::Trace => tracing::Level::TRACE,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Error => tracing::Level::ERROR,
        };
        InvocationState::log(self, level, &message, &fields);
    }

    async fn config_get(&mut self, key: String) -> Option<String> {
        self.ctx.config.get(&key).map(|v| match v {
            toml::Value::String(s) => s.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        })
    }

    async fn config_json(&mut self) -> String {
        self.ctx.config_json.clone()
    }

    async fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        let kv = self.ctx.kv.as_ref()?;
        match kv.get(key.as_bytes()) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(plugin = %self.ctx.name, error = %e, "plugin kv read failed");
                None
            }
        }
    }

    async fn kv_set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        let Some(kv) = self.ctx.kv.as_ref() else {
            return Err("key-value store not available here (self-test or offline invoke)".into());
        };
        if key.len() > MAX_KV_KEY {
            return Err(format!("key longer than {MAX_KV_KEY} bytes"));
        }
        if value.len() > MAX_KV_VALUE {
            return Err(format!("value longer than {MAX_KV_VALUE} bytes"));
        }
        let (max_bytes, max_keys) = self.ctx.kv_quota;
        let r = self
            .ctx
            .kv_usage
            .set(kv.as_ref(), key.as_bytes(), value, max_bytes, max_keys);
        if let Err(e) = &r {
            tracing::warn!(plugin = %self.ctx.name, version = %self.ctx.version, call_id = %self.call_id, error = %e, "plugin key-value write refused");
        }
        // The WIT contract answers a plugin in words.
        r.map_err(|e| e.to_string())
    }

    async fn kv_delete(&mut self, key: String) {
        if let Some(kv) = self.ctx.kv.as_ref()
            && let Err(e) = self.ctx.kv_usage.delete(kv.as_ref(), key.as_bytes())
        {
            tracing::warn!(plugin = %self.ctx.name, error = %e, "plugin kv delete failed");
        }
    }

    async fn now_ms(&mut self) -> u64 {
        ctihost_ground::clock::now_ms()
    }

    async fn counter_add(&mut self, name: String, delta: i64) {
        // A counter name becomes a metric label value: bounded and printable.
        if !name.is_empty() && name.len() <= 64 && !name.chars().any(char::is_control) {
            self.ctx.counters.add(&name, delta);
        }
    }
}

impl crm::Host for InvocationState {
    async fn lookup(&mut self, key: LookupKey) -> Result<Option<Customer>, CrmError> {
        match self.ctx.crm.clone() {
            Some(link) => link.lookup(self.call_id.clone(), key).await,
            None => Err(CrmError::Denied("no CRM connector is linked".into())),
        }
    }
}

impl http::Host for InvocationState {
    async fn send(&mut self, req: http::Request) -> Result<http::Response, http::HttpError> {
        match self.ctx.http.clone() {
            Some(grant) => grant.send(&self.ctx.name, &self.call_id, req).await,
            None => Err(http::HttpError::Denied(
                "this plugin has no HTTP capability".into(),
            )),
        }
    }
}
