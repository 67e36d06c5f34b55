//! Conformance suite of the `Store` trait: the same checks run against the local
//! directory store and the S3 store (SeaweedFS, two instances standing for two regions),
//! plus a few checks of what only one backend has.

use std::io;
use std::ops::Deref;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use coffre::store::fs::FsStore;
use coffre::store::s3::{ObjectLock, S3Params, S3Store};
use coffre::store::{ByteStream, Store, StoreError};
use futures::{StreamExt, TryStreamExt};

use crate::support::{s3_credentials, s3_endpoints, unique};

const PART_SIZE: usize = 5 << 20;
const PREFIX: &str = "coffre/";
const REGION: &str = "us-east-1";

/// A store under test, with a way to look behind its back; derefs to the store.
struct Target {
    store: Box<dyn Store>,
    backend: Backend,
}

enum Backend {
    Fs(tempfile::TempDir),
    S3 { client: Client, bucket: String },
}

impl Deref for Target {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        self.store.as_ref()
    }
}

impl Target {
    fn fs() -> Target {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        // A root that does not exist yet: the first write creates it.
        let store = FsStore::new("local", dir.path().join("backups"));
        Target {
            store: Box::new(store),
            backend: Backend::Fs(dir),
        }
    }

    /// An S3 store in a fresh bucket on the `index`-th test endpoint.
    async fn s3(index: usize) -> Target {
        let endpoint = s3_endpoints()
            .get(index)
            .cloned()
            .expect("enough S3 endpoints");
        let client = admin_client(&endpoint);
        let bucket = unique("store");
        client
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "create bucket {bucket} on {endpoint}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )
            });
        let store = S3Store::connect(s3_params(&format!("region{index}"), &bucket, &endpoint))
            .await
            .expect("connect");
        Target {
            store: Box::new(store),
            backend: Backend::S3 { client, bucket },
        }
    }

    /// What abandoned writes left behind: temporary files, incomplete multipart uploads.
    async fn leftovers(&self) -> Vec<String> {
        match &self.backend {
            Backend::Fs(dir) => {
                let mut found = Vec::new();
                let mut stack = vec![dir.path().to_path_buf()];
                while let Some(d) = stack.pop() {
                    let Ok(entries) = std::fs::read_dir(&d) else {
                        continue;
                    };
                    for entry in entries {
                        let path = entry.expect("read dir entry").path();
                        if path.is_dir() {
                            stack.push(path);
                        } else if path.to_string_lossy().contains(".partial-") {
                            found.push(path.display().to_string());
                        }
                    }
                }
                found
            }
            Backend::S3 { client, bucket } => incomplete_uploads(client, bucket).await,
        }
    }
}

fn s3_params(name: &str, bucket: &str, endpoint: &str) -> S3Params {
    let (access_key, secret_key) = s3_credentials();
    S3Params {
        name: name.to_owned(),
        bucket: bucket.to_owned(),
        region: REGION.to_owned(),
        endpoint: Some(endpoint.to_owned()),
        prefix: PREFIX.to_owned(),
        access_key_id: Some(access_key),
        secret_access_key: Some(secret_key),
        part_size: PART_SIZE,
        stall_timeout: std::time::Duration::from_secs(30),
        object_lock: None,
    }
}

/// A client of the test server that bypasses the store (bucket creation, inspection).
pub(crate) fn admin_client(endpoint: &str) -> Client {
    let (access_key, secret_key) = s3_credentials();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
}

/// Keys of the multipart uploads still open in `bucket`.
pub(crate) async fn incomplete_uploads(client: &Client, bucket: &str) -> Vec<String> {
    let out = client
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("list multipart uploads");
    out.uploads()
        .iter()
        .map(|u| u.key().unwrap_or("?").to_owned())
        .collect()
}

/// `len` bytes of deterministic noise (parts swapped or lost would show).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Cuts `data` into chunks of uneven sizes, none aligned with the part size.
fn chunks(data: &[u8]) -> Vec<Bytes> {
    const SIZES: [usize; 5] = [(1 << 20) + 13, 7, 300_001, (2 << 20) + 1, 65_536];
    let mut out = Vec::new();
    let mut rest = data;
    for size in SIZES.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let n = (*size).min(rest.len());
        out.push(Bytes::copy_from_slice(&rest[..n]));
        rest = &rest[n..];
    }
    out
}

fn stream_of(chunks: Vec<Bytes>) -> ByteStream {
    futures::stream::iter(chunks.into_iter().map(Ok)).boxed()
}

/// A body that yields `good` bytes, then fails, then would yield more.
fn failing_stream(good: usize) -> ByteStream {
    let items = chunks(&noise(good, 9)).into_iter().map(Ok).chain([
        Err(io::Error::other("producer died")),
        Ok(Bytes::from_static(b"never read")),
    ]);
    futures::stream::iter(items).boxed()
}

async fn read_all(store: &dyn Store, key: &str) -> Vec<u8> {
    let chunks: Vec<Bytes> = store
        .get(key)
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("read {key}: {e}"));
    chunks.concat()
}

async fn keys(store: &dyn Store, prefix: &str) -> Vec<String> {
    store
        .list(prefix)
        .await
        .unwrap_or_else(|e| panic!("list {prefix:?}: {e}"))
        .into_iter()
        .map(|o| o.key)
        .collect()
}

// ---- The checks, the same for every backend ----

async fn put_stream_multi_part_round_trip(store: &dyn Store) {
    let data = noise(12 << 20, 1);
    let written = store
        .put_stream("big/data", stream_of(chunks(&data)))
        .await
        .expect("put_stream");
    assert_eq!(written, data.len() as u64);
    let back = read_all(store, "big/data").await;
    assert_eq!(back.len(), data.len());
    assert!(back == data, "bytes read back differ from bytes written");
    let listed = store.list("big/").await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "big/data");
    assert_eq!(listed[0].size, data.len() as u64);
}

async fn put_stream_small_round_trip(store: &dyn Store) {
    let data = noise(100_000, 2);
    let parts = vec![
        Bytes::copy_from_slice(&data[..10]),
        Bytes::new(),
        Bytes::copy_from_slice(&data[10..]),
    ];
    let written = store
        .put_stream("small/data", stream_of(parts))
        .await
        .expect("put_stream");
    assert_eq!(written, data.len() as u64);
    assert!(read_all(store, "small/data").await == data);

    // An empty body makes an empty object.
    let written = store
        .put_stream("small/empty", stream_of(vec![]))
        .await
        .expect("put_stream empty");
    assert_eq!(written, 0);
    assert!(read_all(store, "small/empty").await.is_empty());
    let listed = store.list("small/").await.expect("list");
    let sizes: Vec<(&str, u64)> = listed.iter().map(|o| (o.key.as_str(), o.size)).collect();
    assert_eq!(sizes, [("small/data", 100_000), ("small/empty", 0)]);

    // Exactly one part's worth: the boundary between one PUT and a multipart upload.
    let data = noise(PART_SIZE, 3);
    store
        .put_stream("small/one-part", stream_of(chunks(&data)))
        .await
        .expect("put_stream of exactly one part");
    assert!(read_all(store, "small/one-part").await == data);
}

async fn put_bytes_get_bytes_round_trip(store: &dyn Store) {
    store
        .put_bytes("manifests/1.json", Bytes::from_static(b"{\"v\":1}"))
        .await
        .expect("put_bytes");
    let got = store
        .get_bytes("manifests/1.json", 1024)
        .await
        .expect("get_bytes");
    assert_eq!(&got[..], b"{\"v\":1}");
    // Overwriting replaces the whole object.
    store
        .put_bytes("manifests/1.json", Bytes::from_static(b"{}"))
        .await
        .expect("overwrite");
    let got = store
        .get_bytes("manifests/1.json", 1024)
        .await
        .expect("get_bytes");
    assert_eq!(&got[..], b"{}");
}

async fn get_bytes_refuses_oversize(store: &dyn Store) {
    store
        .put_bytes("m/big", Bytes::from(noise(1000, 4)))
        .await
        .expect("put_bytes");
    assert_eq!(
        store
            .get_bytes("m/big", 1000)
            .await
            .expect("at the limit")
            .len(),
        1000
    );
    let err = store
        .get_bytes("m/big", 999)
        .await
        .expect_err("an object over max_bytes must be refused");
    assert!(!err.is_not_found(), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("m/big") && message.contains("999"),
        "{message}"
    );
    assert!(message.contains(store.name()), "{message}");
}

async fn list_is_sorted_and_filtered_by_prefix(store: &dyn Store) {
    for key in ["b/2", "a/2", "a/10", "ab", "a/1", "c/d/e"] {
        store
            .put_bytes(key, Bytes::copy_from_slice(key.as_bytes()))
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }
    assert_eq!(keys(store, "a/").await, ["a/1", "a/10", "a/2"]);
    assert_eq!(keys(store, "a").await, ["a/1", "a/10", "a/2", "ab"]);
    assert_eq!(keys(store, "a/1").await, ["a/1", "a/10"]);
    assert_eq!(keys(store, "c/").await, ["c/d/e"]);
    assert_eq!(keys(store, "c/d/").await, ["c/d/e"]);
    assert_eq!(
        keys(store, "").await,
        ["a/1", "a/10", "a/2", "ab", "b/2", "c/d/e"]
    );
    assert!(keys(store, "zzz").await.is_empty());
    assert!(keys(store, "nothing/here/").await.is_empty());
    let listed = store.list("b/").await.expect("list");
    assert_eq!(listed[0].size, 3);
}

async fn get_missing_is_not_found(store: &dyn Store) {
    let err = store
        .get("missing/key")
        .await
        .err()
        .expect("get of a missing key");
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains(store.name()), "{err}");
    let err = store
        .get_bytes("missing/key", 10)
        .await
        .expect_err("get_bytes of a missing key");
    assert!(err.is_not_found(), "{err}");
}

async fn delete_then_list(store: &dyn Store) {
    store
        .put_bytes("d/one", Bytes::from_static(b"1"))
        .await
        .expect("put");
    store
        .put_bytes("d/sub/two", Bytes::from_static(b"2"))
        .await
        .expect("put");
    store.delete("d/sub/two").await.expect("delete");
    assert_eq!(keys(store, "").await, ["d/one"]);
    assert!(
        store
            .get("d/sub/two")
            .await
            .err()
            .expect("deleted")
            .is_not_found()
    );
    store.delete("d/one").await.expect("delete");
    assert!(keys(store, "").await.is_empty());
}

async fn delete_missing_is_ok(store: &dyn Store) {
    store
        .delete("never/written")
        .await
        .expect("delete of a missing key");
    store
        .delete("never")
        .await
        .expect("delete of a missing key");
}

async fn invalid_keys_are_refused(store: &dyn Store) {
    for key in [
        "",
        "/abs",
        "a/../b",
        "..",
        "a//b",
        "a/",
        "a\\b",
        "./a",
        "x.partial-1",
    ] {
        let err = store
            .put_bytes(key, Bytes::from_static(b"x"))
            .await
            .expect_err("invalid key accepted");
        assert!(err.to_string().contains("invalid key"), "{key:?}: {err}");
        assert!(store.get(key).await.is_err(), "{key:?}");
    }
    assert!(keys(store, "").await.is_empty());
}

/// A body failing midway — before the first part is full, and after parts went out —
/// leaves no object, no temporary file, no open multipart upload, and the previous
/// version of the object intact.
async fn failed_stream_leaves_nothing(target: &Target) {
    let store: &dyn Store = &**target;
    for (key, good) in [("fail/small", 1000), ("fail/big", 11 << 20)] {
        let err = store
            .put_stream(key, failing_stream(good))
            .await
            .expect_err("a body yielding an error must fail the put");
        assert!(matches!(err, StoreError::Aborted { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains(store.name()) && message.contains(key),
            "{message}"
        );
        assert!(message.contains("producer died"), "{message}");
    }
    assert!(keys(store, "").await.is_empty());
    assert!(
        target.leftovers().await.is_empty(),
        "{:?}",
        target.leftovers().await
    );

    store
        .put_bytes("fail/kept", Bytes::from_static(b"v1"))
        .await
        .expect("put");
    store
        .put_stream("fail/kept", failing_stream(7 << 20))
        .await
        .expect_err("failing put");
    assert_eq!(
        &store.get_bytes("fail/kept", 10).await.expect("get")[..],
        b"v1"
    );
    assert!(
        target.leftovers().await.is_empty(),
        "{:?}",
        target.leftovers().await
    );
}

/// Runs every check against each backend, as `store::fs::CHECK` and `store::s3::CHECK`.
/// Checks listed after `on_target:` also look behind the store's back.
macro_rules! conformance {
    ($($check:ident),+ ; on_target: $($target_check:ident),+ $(,)?) => {
        mod fs {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&*super::Target::fs()).await;
                }
            )+
            $(
                #[tokio::test]
                async fn $target_check() {
                    super::$target_check(&super::Target::fs()).await;
                }
            )+
        }
        mod s3 {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&*super::Target::s3(0).await).await;
                }
            )+
            $(
                #[tokio::test]
                async fn $target_check() {
                    super::$target_check(&super::Target::s3(0).await).await;
                }
            )+
        }
    };
}

conformance!(
    put_stream_multi_part_round_trip,
    put_stream_small_round_trip,
    put_bytes_get_bytes_round_trip,
    get_bytes_refuses_oversize,
    list_is_sorted_and_filtered_by_prefix,
    get_missing_is_not_found,
    delete_then_list,
    delete_missing_is_ok,
    invalid_keys_are_refused;
    on_target: failed_stream_leaves_nothing,
);

// ---- Only the local directory ----

#[tokio::test]
async fn fs_missing_root_lists_empty_and_temp_files_are_hidden() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStore::new("local", dir.path().join("nope"));
    assert!(
        store
            .list("")
            .await
            .expect("list of a missing root")
            .is_empty()
    );

    let store = FsStore::new("local", dir.path().to_path_buf());
    std::fs::create_dir_all(dir.path().join("x")).expect("mkdir");
    std::fs::write(dir.path().join("x/data.partial-0123"), b"half").expect("write");
    std::fs::write(dir.path().join("x/data"), b"whole").expect("write");
    assert_eq!(keys(&store, "").await, ["x/data"]);
    assert_eq!(keys(&store, "x/data").await, ["x/data"]);
}

#[tokio::test]
async fn fs_delete_prunes_empty_directories_up_to_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let store = FsStore::new("local", root.clone());
    store
        .put_bytes("a/b/c/obj", Bytes::from_static(b"x"))
        .await
        .expect("put");
    store
        .put_bytes("a/keep", Bytes::from_static(b"y"))
        .await
        .expect("put");
    store.delete("a/b/c/obj").await.expect("delete");
    assert!(!root.join("a/b").exists(), "empty directories left behind");
    assert!(root.join("a/keep").exists());
    store.delete("a/keep").await.expect("delete");
    assert!(!root.join("a").exists());
    assert!(root.exists(), "the root itself must stay");
}

// ---- Only S3 ----

/// The second endpoint (the other "region") works the same.
#[tokio::test]
async fn s3_second_endpoint() {
    put_stream_multi_part_round_trip(&*Target::s3(1).await).await;
    list_is_sorted_and_filtered_by_prefix(&*Target::s3(1).await).await;
    failed_stream_leaves_nothing(&Target::s3(1).await).await;
}

#[tokio::test]
async fn s3_list_ignores_objects_outside_the_prefix() {
    let target = Target::s3(0).await;
    let Backend::S3 { client, bucket } = &target.backend else {
        unreachable!()
    };
    for key in ["elsewhere/x", "coffre-other/y", "coffre"] {
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(Bytes::from_static(b"z").into())
            .send()
            .await
            .expect("put outside the prefix");
    }
    target
        .put_bytes("mine", Bytes::from_static(b"m"))
        .await
        .expect("put");
    assert_eq!(keys(&*target, "").await, ["mine"]);
    // The key is stored under the prefix.
    client
        .head_object()
        .bucket(bucket)
        .key("coffre/mine")
        .send()
        .await
        .expect("object under the prefix");
}

#[tokio::test]
async fn s3_abort_incomplete_uploads() {
    let target = Target::s3(0).await;
    let Backend::S3 { client, bucket } = &target.backend else {
        unreachable!()
    };
    // As a crash would leave them: one upload with a part, one without, one elsewhere.
    for key in ["coffre/crashed/a", "coffre/crashed/b", "coffre/other/c"] {
        let created = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("create multipart upload");
        if key.ends_with('a') {
            client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(created.upload_id().expect("upload id"))
                .part_number(1)
                .body(Bytes::from(noise(1000, 5)).into())
                .send()
                .await
                .expect("upload part");
        }
    }
    let mut open = incomplete_uploads(client, bucket).await;
    open.sort();
    assert_eq!(
        open,
        ["coffre/crashed/a", "coffre/crashed/b", "coffre/other/c"]
    );

    let store = S3Store::connect(s3_params("region0", bucket, &s3_endpoints()[0]))
        .await
        .expect("connect");
    assert_eq!(
        store
            .abort_incomplete_uploads("crashed/")
            .await
            .expect("abort"),
        2
    );
    assert_eq!(incomplete_uploads(client, bucket).await, ["coffre/other/c"]);
    assert_eq!(store.abort_incomplete_uploads("").await.expect("abort"), 1);
    assert!(incomplete_uploads(client, bucket).await.is_empty());
    assert_eq!(store.abort_incomplete_uploads("").await.expect("abort"), 0);
}

/// A part upload failing (here: the upload aborted behind the store's back) fails the put
/// with a message naming the target, the key and the service's error, and leaves nothing.
#[tokio::test]
async fn s3_failed_part_fails_the_put() {
    let target = Target::s3(0).await;
    let Backend::S3 { client, bucket } = &target.backend else {
        unreachable!()
    };
    let (client, bucket) = (client.clone(), bucket.clone());
    // Sabotage once, with the first chunk read after the first part is full: by then the
    // multipart upload exists; part 2 or 3 then hits an aborted upload.
    let (mut sent, mut sabotaged) = (0usize, false);
    let body = futures::stream::iter(chunks(&noise(16 << 20, 7)))
        .then(move |chunk| {
            let (client, bucket) = (client.clone(), bucket.clone());
            let sabotage = sent >= PART_SIZE && !sabotaged;
            sabotaged |= sabotage;
            sent += chunk.len();
            async move {
                if sabotage {
                    for upload in client
                        .list_multipart_uploads()
                        .bucket(&bucket)
                        .send()
                        .await
                        .expect("list uploads")
                        .uploads()
                    {
                        client
                            .abort_multipart_upload()
                            .bucket(&bucket)
                            .key(upload.key().expect("key"))
                            .upload_id(upload.upload_id().expect("upload id"))
                            .send()
                            .await
                            .expect("abort behind the store's back");
                    }
                }
                Ok(chunk)
            }
        })
        .boxed();
    let err = target
        .put_stream("sabotaged/data", body)
        .await
        .expect_err("a put whose upload vanished must fail");
    let message = err.to_string();
    assert!(
        message.starts_with("target region0: put coffre/sabotaged/data:")
            || message.starts_with("target region0: complete upload coffre/sabotaged/data:"),
        "{message}"
    );
    assert!(message.contains("NoSuchUpload"), "{message}");
    assert!(keys(&*target, "").await.is_empty());
    assert!(target.leftovers().await.is_empty());
}

#[tokio::test]
async fn s3_unreachable_endpoint_names_the_target() {
    let store = S3Store::connect(s3_params("far-away", "nobucket", "http://127.0.0.1:1"))
        .await
        .expect("connect makes no network call");
    let err = store
        .put_bytes("x/manifest", Bytes::from_static(b"{}"))
        .await
        .expect_err("put to an unreachable endpoint");
    let message = err.to_string();
    assert!(
        message.starts_with("target far-away: put coffre/x/manifest:"),
        "{message}"
    );
    assert!(
        message.contains("http://127.0.0.1:1 reachable"),
        "{message}"
    );
    assert!(
        !message.contains("coffre-secret") && !message.contains(&s3_credentials().1),
        "{message}"
    );

    let err = store
        .put_stream("x/data", stream_of(chunks(&noise(6 << 20, 6))))
        .await
        .expect_err("put_stream to an unreachable endpoint");
    assert!(err.to_string().contains("far-away"), "{err}");
    let err = store
        .list("")
        .await
        .expect_err("list on an unreachable endpoint");
    assert!(err.to_string().contains("far-away"), "{err}");
}

#[tokio::test]
async fn s3_connect_rejects_bad_parameters() {
    let base = || S3Params {
        name: "bad".into(),
        bucket: "b".into(),
        region: REGION.into(),
        endpoint: Some("http://127.0.0.1:1".into()),
        prefix: String::new(),
        access_key_id: Some("id".into()),
        secret_access_key: Some("very-secret".into()),
        part_size: PART_SIZE,
        stall_timeout: std::time::Duration::from_secs(30),
        object_lock: None,
    };
    let cases = [
        S3Params {
            part_size: 1 << 20,
            ..base()
        },
        S3Params {
            prefix: "no-slash".into(),
            ..base()
        },
        S3Params {
            bucket: String::new(),
            ..base()
        },
        S3Params {
            access_key_id: None,
            ..base()
        },
    ];
    for params in cases {
        let shown = format!("{params:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        let err = S3Store::connect(params)
            .await
            .expect_err("bad parameters accepted");
        assert!(err.to_string().starts_with("target bad: connect"), "{err}");
    }
    assert!(S3Store::connect(base()).await.is_ok());
}

/// The fs store's cleanup removes temporary files of interrupted writes under the
/// prefix, and nothing else.
#[tokio::test]
async fn fs_cleanup_incomplete_removes_only_temporary_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsStore::new("local".to_owned(), dir.path().to_owned());
    store
        .put_bytes("src/1/manifest.json", Bytes::from_static(b"{}"))
        .await
        .expect("put");
    let crashed = dir
        .path()
        .join("src/1/data.sql.zst.age.partial-00000000000000aa");
    std::fs::write(&crashed, b"half").expect("partial");
    let elsewhere = dir.path().join("other/x.partial-00000000000000bb");
    std::fs::create_dir_all(elsewhere.parent().expect("parent")).expect("mkdir");
    std::fs::write(&elsewhere, b"half").expect("partial");
    assert_eq!(store.cleanup_incomplete("src/").await.expect("cleanup"), 1);
    assert!(!crashed.exists());
    assert!(elsewhere.exists(), "outside the prefix: left alone");
    assert_eq!(keys(&store, "").await, ["src/1/manifest.json"]);
    assert_eq!(store.cleanup_incomplete("src/").await.expect("cleanup"), 0);
}

/// With Object Lock, every object is written locked, and deleting it before its
/// retain-until date fails, naming the lock; the object stays readable.
#[tokio::test]
async fn s3_object_lock_keeps_objects_until_their_date() {
    let endpoint = s3_endpoints()[0].clone();
    let client = admin_client(&endpoint);
    let bucket = unique("locked");
    client
        .create_bucket()
        .bucket(&bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "create locked bucket: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
    let mut params = s3_params("vault", &bucket, &endpoint);
    params.object_lock = Some(ObjectLock {
        mode: "GOVERNANCE".into(),
        days: 1,
    });
    let store = S3Store::connect(params).await.expect("connect");
    let data = noise(PART_SIZE + 1000, 9);
    store
        .put_stream("b/1/data", stream_of(chunks(&data)))
        .await
        .expect("multipart put");
    store
        .put_bytes("b/1/manifest.json", Bytes::from_static(b"{}"))
        .await
        .expect("small put");
    for key in ["coffre/b/1/data", "coffre/b/1/manifest.json"] {
        let retention = client
            .get_object_retention()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "retention of {key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )
            });
        let r = retention.retention().expect("a retention is set");
        assert_eq!(r.mode().map(|m| m.as_str()), Some("GOVERNANCE"), "{key}");
        let until = r.retain_until_date().expect("date").secs();
        let in_a_day = chrono::Utc::now().timestamp() + 86_400;
        assert!(
            (in_a_day - until).abs() < 600,
            "{key}: retain until {until}"
        );
    }
    let err = store
        .delete("b/1/data")
        .await
        .expect_err("a locked object cannot be deleted");
    assert!(err.to_string().contains("Object Lock"), "{err}");
    assert_eq!(read_all(&store, "b/1/data").await, data);
}
