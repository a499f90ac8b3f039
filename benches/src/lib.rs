//! Shared inputs of the benches: answer bodies from the synthetic tenant,
//! rendered exactly as the fake Orca renders them, without HTTP.

use fixtures::tenant::{Order, OrderKey, Tenant, TenantSpec};

/// A tenant with `findings` findings over `findings / 20` assets and a few
/// odd values, as the end-to-end bench uses.
pub fn tenant(findings: u64) -> Tenant {
    Tenant::new(TenantSpec {
        seed: 1,
        assets: (findings / 20).max(10),
        findings,
        odd_share: 0.05,
        over_limit_share: 0.02,
        orphan_findings: 0,
        non_vm_findings: 0,
    })
}

/// The answer body of `model` at `offset` (ordered by id, counted).
pub fn page_body(t: &Tenant, model: &str, offset: u64, limit: u64) -> Vec<u8> {
    let models = vec![model.to_string()];
    let Ok(sel) = t.select(&models, None) else {
        return b"{\"status\":\"success\",\"data\":[]}".to_vec();
    };
    let items = t.page(
        &sel,
        Order {
            key: OrderKey::Id,
            desc: false,
        },
        offset,
        limit,
    );
    let mut out = String::with_capacity(64 + items.len() * 1600);
    out.push_str("{\"status\":\"success\",");
    out.push_str(&format!("\"total_items\":{},", sel.total()));
    out.push_str("\"data\":[");
    for (i, &(band, l)) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        t.write_item(&sel, band, l, &mut out);
    }
    out.push_str("]}");
    out.into_bytes()
}
