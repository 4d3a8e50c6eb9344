//! PEM blocks (RFC 7468), read leniently: text around the blocks is ignored (openssl puts an
//! `EC PARAMETERS` block before an `EC PRIVATE KEY`; some tools add headers or comments), each
//! block's base64 body may be wrapped at any width. Nothing decoded is ever put in an error.

use base64::Engine as _;

/// One PEM block: its label (`PRIVATE KEY`, ...) and its decoded body.
pub struct Block {
    pub label: String,
    pub der: Vec<u8>,
}

impl Drop for Block {
    fn drop(&mut self) {
        // Private key bytes do not outlive their use (best effort, no extra crate).
        self.der.iter_mut().for_each(|b| *b = 0);
    }
}

/// Why a PEM text was refused (without any of its content).
#[derive(Debug)]
pub enum PemError {
    /// No `-----BEGIN <label>-----` line.
    NoBlock,
    /// A block without its END line, or a body that is not base64.
    Damaged(&'static str),
}

/// Every PEM block in `text`, in order.
pub fn blocks(text: &[u8]) -> Result<Vec<Block>, PemError> {
    let text = std::str::from_utf8(text).map_err(|_| PemError::NoBlock)?;
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = armor(line, "BEGIN") else {
            continue;
        };
        let mut body = String::new();
        let mut ended = false;
        for line in lines.by_ref() {
            if let Some(end) = armor(line, "END") {
                if end != label {
                    return Err(PemError::Damaged("its END line names another label"));
                }
                ended = true;
                break;
            }
            // RFC 1421 headers (Proc-Type, DEK-Info) of legacy encrypted keys.
            if line.contains(':') {
                return Err(PemError::Damaged(
                    "it has PEM headers (a legacy openssl-encrypted key?); decrypt it with `openssl pkey -in KEY -out PLAIN`",
                ));
            }
            body.push_str(line);
        }
        if !ended {
            return Err(PemError::Damaged("a block has no END line"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| PemError::Damaged("a block's body is not base64"))?;
        out.push(Block {
            label: label.to_string(),
            der,
        });
    }
    if out.is_empty() {
        return Err(PemError::NoBlock);
    }
    Ok(out)
}

/// The label of an armor line `-----<kind> <label>-----`.
fn armor<'a>(line: &'a str, kind: &str) -> Option<&'a str> {
    line.strip_prefix("-----")?
        .strip_suffix("-----")?
        .strip_prefix(kind)?
        .strip_prefix(' ')
}
