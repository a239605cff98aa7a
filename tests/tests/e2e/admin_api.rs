//! The admin API: it needs the admin token AND an allowed client address; it
//! is off without a configured token; tenants (and their own rate limits),
//! cross-tenant lists, a conversation's activities, deliveries and stats.

use converger_e2e::api::{assert_error, create_tenant, expect, Client, Fixture};
use converger_e2e::server::ADMIN_TOKEN;
use converger_e2e::TestServer;
use serde_json::json;

on_both_backends!(
    tenants_are_created_listed_read_updated_and_rekeyed,
    a_tenants_limits_are_patched_key_by_key_shown_and_validated,
    a_tenants_activity_limit_holds_at_once_and_clears_at_once,
    lists_span_tenants_and_filter_by_tenant,
    stats_count_rows
);

fn tenants_are_created_listed_read_updated_and_rekeyed(server: &TestServer) {
    let admin = Client::admin(server);
    let created = expect(&admin.post("/admin/api/tenants", &json!({"name": "acme"})), 201);
    let tenant = &created["tenant"];
    assert!(created["api_key"].as_str().is_some_and(|k| k.starts_with("cvg_")));
    assert_eq!((tenant["name"].clone(), tenant["status"].clone()), (json!("acme"), json!("active")));
    for key in ["id", "created_at", "updated_at"] {
        assert!(tenant[key].is_string(), "{key}: {tenant}");
    }
    assert!(!created.to_string().contains("hash"), "never the key hash: {created}");
    let path = format!("/admin/api/tenants/{}", tenant["id"].as_str().expect("id"));
    assert_eq!(&expect(&admin.get(&path), 200), tenant);
    let renamed = expect(&admin.patch(&path, &json!({"name": "acme2", "status": "inactive"})), 200);
    assert_eq!((renamed["name"].clone(), renamed["status"].clone()), (json!("acme2"), json!("inactive")));
    assert_eq!(
        assert_error(&admin.patch(&path, &json!({"status": "gone"})), 422, "validation_failed")["field"],
        "status"
    );
    assert_eq!(assert_error(&admin.post("/admin/api/tenants", &json!({})), 422, "validation_failed")["field"], "name");
    let rekeyed = expect(&admin.post(&format!("{path}/rotate-key"), &json!({})), 200);
    assert_ne!(rekeyed["api_key"], created["api_key"]);
    assert_eq!(rekeyed["tenant"]["id"], tenant["id"]);
    create_tenant(server, "second");
    let page = expect(&admin.get("/admin/api/tenants?limit=1"), 200);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    let rest =
        expect(&admin.get(&format!("/admin/api/tenants?cursor={}", page["next_cursor"].as_str().expect("more"))), 200);
    assert_eq!(rest["data"].as_array().map(Vec::len), Some(1));
    assert_error(&admin.get("/admin/api/tenants/0190f0f0-0000-7000-8000-000000000000"), 404, "not_found");
    assert_error(&admin.post("/admin/api/tenants/nope/rotate-key", &json!({})), 404, "not_found");
}

fn a_tenants_limits_are_patched_key_by_key_shown_and_validated(server: &TestServer) {
    let admin = Client::admin(server);
    let unset = json!({"requests_per_second": null, "activities_per_second": null, "deliveries_per_second": null});
    let created = expect(&admin.post("/admin/api/tenants", &json!({"name": "limited"})), 201);
    assert_eq!(created["tenant"]["limits"], unset, "a new tenant has the server's limits");
    let path = format!("/admin/api/tenants/{}", created["tenant"]["id"].as_str().expect("id"));

    let set = json!({"limits": {"requests_per_second": 100, "deliveries_per_second": 5}});
    let patched = expect(&admin.patch(&path, &set), 200);
    let want = json!({"requests_per_second": 100, "activities_per_second": null, "deliveries_per_second": 5});
    assert_eq!(patched["limits"], want);
    assert_eq!(patched["name"], "limited", "the rest unchanged");
    assert_eq!(expect(&admin.get(&path), 200)["limits"], want);
    let listed = expect(&admin.get("/admin/api/tenants"), 200);
    let mine = listed["data"].as_array().expect("data").iter().find(|t| t["id"] == created["tenant"]["id"]).cloned();
    assert_eq!(mine.expect("listed")["limits"], want);

    // A key left out keeps its value; null clears it; a rename keeps them all.
    let more = json!({"limits": {"activities_per_second": 1_000_000_000, "requests_per_second": null}});
    let want = json!({"requests_per_second": null, "activities_per_second": 1_000_000_000, "deliveries_per_second": 5});
    assert_eq!(expect(&admin.patch(&path, &more), 200)["limits"], want);
    assert_eq!(expect(&admin.patch(&path, &json!({"name": "renamed"})), 200)["limits"], want);

    for (body, field) in [
        (json!({"limits": {"requests_per_second": 0}}), "limits.requests_per_second"),
        (json!({"limits": {"activities_per_second": 1_000_000_001}}), "limits.activities_per_second"),
        (json!({"limits": {"deliveries_per_second": 2.5}}), "limits.deliveries_per_second"),
        (json!({"limits": {"deliveries_per_second": "5"}}), "limits.deliveries_per_second"),
        (json!({"limits": {"deliveries_per_second": -1}}), "limits.deliveries_per_second"),
        (json!({"limits": {"connections_per_second": 5}}), "limits.connections_per_second"),
        (json!({"limits": 5}), "limits"),
    ] {
        assert_eq!(assert_error(&admin.patch(&path, &body), 422, "validation_failed")["field"], field, "{body}");
    }
    assert_eq!(expect(&admin.get(&path), 200)["limits"], want, "refused patches changed nothing");
    let cleared = json!({"limits": {"activities_per_second": null, "deliveries_per_second": null}});
    assert_eq!(expect(&admin.patch(&path, &cleared), 200)["limits"], unset);
}

fn a_tenants_activity_limit_holds_at_once_and_clears_at_once(server: &TestServer) {
    let f = Fixture::new(server, "throttled");
    let other = Fixture::new(server, "unthrottled");
    let (api, admin) = (f.client(server), Client::admin(server));
    let path = format!("/admin/api/tenants/{}", f.tenant.id);
    let write =
        |api: &Client, f: &Fixture, i| api.post(&f.activities_path(), &json!({"sender": "u", "text": format!("{i}")}));
    expect(&admin.patch(&path, &json!({"limits": {"activities_per_second": 1}})), 200);
    // One activity a second for the node: a burst of ten meets refusals at once.
    let replies: Vec<_> = (0..10).map(|i| write(&api, &f, i)).collect();
    let refused = replies.iter().find(|r| r.status == 429).expect("a refusal among ten writes");
    assert_error(refused, 429, "rate_limited");
    let others = other.client(server);
    for i in 0..10 {
        expect(&write(&others, &other, i), 201);
    }
    expect(&admin.patch(&path, &json!({"limits": {"activities_per_second": null}})), 200);
    for i in 10..20 {
        expect(&write(&api, &f, i), 201);
    }
}

fn lists_span_tenants_and_filter_by_tenant(server: &TestServer) {
    let a = Fixture::new(server, "a");
    let b = Fixture::new(server, "b");
    let admin = Client::admin(server);
    let count = |path: &str| expect(&admin.get(path), 200)["data"].as_array().map(Vec::len).expect("data");
    assert_eq!(count("/admin/api/channels"), 2);
    assert_eq!(count(&format!("/admin/api/channels?tenant_id={}", a.tenant.id)), 1);
    assert_eq!(count("/admin/api/channels?status=inactive"), 0);
    assert_eq!(count("/admin/api/conversations"), 2);
    assert_eq!(count(&format!("/admin/api/conversations?tenant_id={}&status=active", b.tenant.id)), 1);
    assert_eq!(count(&format!("/admin/api/conversations?channel_id={}", b.channel_id())), 1);
    expect(&b.client(server).post(&b.activities_path(), &json!({"sender": "u", "text": "hi"})), 201);
    let conv = expect(&admin.get(&format!("/admin/api/conversations/{}", b.conversation_id())), 200);
    assert_eq!(conv["last_seq"], 1);
    let acts =
        expect(&admin.get(&format!("/admin/api/conversations/{}/activities?after_seq=0", b.conversation_id())), 200);
    assert_eq!((acts["data"][0]["text"].clone(), acts["last_seq"].clone()), (json!("hi"), json!(1)));
    let deliveries = expect(&admin.get("/admin/api/deliveries?status=failed"), 200);
    assert_eq!(deliveries, json!({"data": [], "next_cursor": null}));
    assert_error(&admin.get("/admin/api/deliveries?status=lost"), 400, "invalid_parameter");
    assert_error(
        &admin.post("/admin/api/deliveries/0190f0f0-0000-7000-8000-000000000000/retry", &json!({})),
        404,
        "not_found",
    );
    assert_error(&admin.get("/admin/api/conversations?tenant_id=x"), 400, "invalid_parameter");
}

fn stats_count_rows(server: &TestServer) {
    let f = Fixture::new(server, "stats");
    expect(&f.client(server).post(&f.activities_path(), &json!({"sender": "u", "text": "hi"})), 201);
    let mut stats = expect(&Client::admin(server).get("/admin/api/stats"), 200);
    // At least the asking connection itself (others may linger a moment).
    let open = stats["connections"].take().as_u64().unwrap_or_else(|| panic!("connections: {stats}"));
    assert!(open >= 1, "the asking connection is open: {open}");
    assert_eq!(
        stats,
        json!({"tenants": 1, "channels": 1, "conversations": 1, "activities": 1,
               "deliveries": {"pending": 0, "delivered": 0, "failed": 0}, "connections": null})
    );
    assert!(server.get("/metrics").text().contains("converger_connections_open "), "the gauge is on /metrics");
}

#[test]
fn admin_needs_the_token() {
    let server = TestServer::embedded();
    let reply = Client::anonymous(&server).get("/admin/api/tenants");
    assert_error(&reply, 401, "unauthorized");
    assert_error(&Client::bearer(&server, "wrong-token").get("/admin/api/tenants"), 401, "unauthorized");
    let plain = server.request("GET", "/admin/api/stats", &[("authorization", ADMIN_TOKEN)], b"");
    assert_error(&plain, 401, "unauthorized");
    // A tenant key is not the admin token.
    let tenant = create_tenant(&server, "t");
    assert_error(&Client::bearer(&server, &tenant.api_key).get("/admin/api/tenants"), 401, "unauthorized");
    assert_eq!(Client::admin(&server).get("/admin/api/stats").status, 200);
}

#[test]
fn admin_refuses_an_address_outside_the_allow_list_even_with_the_token() {
    // The test client connects from loopback, which this list leaves out.
    let server = TestServer::embedded_with(&["--admin-allow", "10.0.0.0/8"]);
    let reply = Client::admin(&server).get("/admin/api/tenants");
    assert_error(&reply, 403, "forbidden");
    assert_error(&Client::admin(&server).post("/admin/api/tenants", &json!({"name": "x"})), 403, "forbidden");
    assert_error(&Client::anonymous(&server).get("/admin/api/stats"), 403, "forbidden");
    // Every path under /admin answers the same, known or not, whatever the
    // method: the admin routes cannot be enumerated from outside the list.
    for path in ["/admin", "/admin/", "/admin/api", "/admin/api/anything", "/admin/api/tenants/x/y"] {
        for method in ["GET", "POST", "DELETE", "PUT"] {
            let reply = Client::admin(&server).send(method, path, &[], None);
            assert_error(&reply, 403, "forbidden");
        }
    }
    assert_error(&Client::anonymous(&server).send("DELETE", "/admin/api/tenants", &[], None), 403, "forbidden");
    // Outside /admin nothing changes.
    assert_error(&server.get("/administrator"), 404, "not_found");
}

#[test]
fn admin_refuses_an_outside_address_before_saying_whether_the_admin_api_is_on() {
    let server = TestServer::embedded_with(&["--admin-allow", "10.0.0.0/8", "--admin-token", ""]);
    assert_error(&Client::anonymous(&server).get("/admin/api/tenants"), 403, "forbidden");
    assert_error(&Client::anonymous(&server).get("/admin/nope"), 403, "forbidden");
}

#[test]
fn admin_api_is_off_without_a_configured_token() {
    let server = TestServer::embedded_with(&["--admin-token", ""]);
    assert_error(&Client::bearer(&server, "anything").get("/admin/api/tenants"), 404, "admin_disabled");
    assert_error(&Client::anonymous(&server).post("/admin/api/tenants", &json!({"name": "x"})), 404, "admin_disabled");
    assert_error(&Client::anonymous(&server).get("/admin/api/anything"), 404, "admin_disabled");
    assert_eq!(server.get("/health").status, 200);
}
