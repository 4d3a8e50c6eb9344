//! One client per registry host, made on first use by a connector the caller supplies (which
//! knows where credentials come from: Docker config, ECR through the AWS SDK, ...). Used for
//! base images, which may live in registries other than the push destination.

use super::client::RegistryClient;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Makes a client for a registry API host; errors are messages naming the host and the fix.
pub type Connect = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<RegistryClient, String>> + Send>>
        + Send
        + Sync,
>;

/// Clients by host, each made once.
pub struct Clients {
    connect: Connect,
    made: tokio::sync::Mutex<HashMap<String, Arc<RegistryClient>>>,
}

impl Clients {
    /// Clients made by `connect`.
    pub fn new(connect: Connect) -> Self {
        Clients {
            connect,
            made: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The client for `host` (an API host, `host[:port]`), made on first use.
    pub async fn get(&self, host: &str) -> Result<Arc<RegistryClient>, String> {
        let mut made = self.made.lock().await;
        if let Some(c) = made.get(host) {
            return Ok(c.clone());
        }
        let c = Arc::new((self.connect)(host.to_string()).await?);
        made.insert(host.to_string(), c.clone());
        Ok(c)
    }
}
