//! Bulk CSV import of households, through the RPC and through the `jiaxin import` command.

use crate::common::{self, TestSystem, authed, id_number};
use jiaxin_proto::identity::{
    ImportHouseholdsRequest, ImportHouseholdsResponse, ImportOptions, ListHouseholdsRequest,
    import_households_request::Part,
};

async fn grid(sys: &TestSystem, token: &str) -> String {
    common::grid_under_scope(&mut sys.identity().await, token, "G-0101").await
}

/// Three households, seven residents; the row on `bad_line` (if any) gets a wrong check digit.
/// H2 names its grid by code, the others by id, as county exports mix both.
fn csv(grid: &str, bad_line: Option<usize>) -> String {
    let rows = [
        ("H1", "户主", "陈家明", id_number("320830", "19700305", 1)),
        ("H1", "配偶", "王秀英", id_number("320830", "19720708", 2)),
        ("H1", "子女", "陈小宝", id_number("320830", "20150606", 3)),
        ("H2", "户主", "李建国", id_number("320830", "19650101", 4)),
        ("H2", "配偶", "赵桂兰", id_number("320830", "19660202", 5)),
        ("H3", "户主", "孙立", id_number("320830", "19880808", 6)),
        ("H3", "父母", "孙老汉", id_number("320830", "19400404", 7)),
    ];
    let mut out = String::from("household_ref,grid,address,relation,name,id_number,phone\n");
    for (i, (href, relation, name, id)) in rows.iter().enumerate() {
        let mut id = id.clone();
        if bad_line == Some(i + 2) {
            let last = if id.ends_with('1') { "2" } else { "1" };
            id.replace_range(17..18, last);
        }
        let grid = if *href == "H2" { "G-0101" } else { grid };
        out.push_str(&format!("{href},{grid},\"新街村{href}号\",{relation},{name},{id},\n"));
    }
    out
}

async fn import(sys: &TestSystem, token: &str, body: &str, options: ImportOptions) -> ImportHouseholdsResponse {
    let mut messages = vec![ImportHouseholdsRequest { part: Some(Part::Options(options)) }];
    // Small chunks that split rows and multi-byte characters across messages.
    for chunk in body.as_bytes().chunks(37) {
        messages.push(ImportHouseholdsRequest { part: Some(Part::Chunk(chunk.to_vec())) });
    }
    let mut client = sys.identity().await;
    client.import_households(authed(token, tokio_stream::iter(messages))).await.unwrap().into_inner()
}

async fn household_count(sys: &TestSystem, token: &str) -> usize {
    let mut client = sys.identity().await;
    client
        .list_households(authed(token, ListHouseholdsRequest { page_size: 1000, ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .households
        .len()
}

#[tokio::test]
async fn one_bad_row_is_reported_by_line_and_nothing_is_imported() {
    let sys = TestSystem::start().await;
    let token = sys.admin_token().await;
    let grid_id = grid(&sys, &token).await;
    let body = csv(&grid_id, None);
    // Line 6 is H2's spouse.
    let body_with_bad = csv(&grid_id, Some(6));

    let report = import(&sys, &token, &body_with_bad, ImportOptions::default()).await;
    assert!(!report.committed);
    assert_eq!(report.rows_read, 7);
    assert_eq!(report.bad_row_count, 1);
    assert_eq!((report.bad_rows[0].line, report.bad_rows[0].field.as_str()), (6, "id_number"));
    assert_eq!((report.households_imported, report.residents_imported), (0, 0));
    assert_eq!(household_count(&sys, &token).await, 0, "a bad file writes nothing");

    // Skipping bad rows imports the rest: all three households, six residents.
    let report = import(&sys, &token, &body_with_bad, ImportOptions { skip_bad_rows: true, dry_run: false }).await;
    assert!(report.committed);
    assert_eq!((report.households_imported, report.residents_imported), (3, 6));
    assert_eq!(household_count(&sys, &token).await, 3);

    // Importing the same people again: every row is a registered ID number.
    let report = import(&sys, &token, &body, ImportOptions::default()).await;
    assert!(!report.committed);
    assert_eq!(report.bad_row_count, 7);
    assert!(report.bad_rows.iter().all(|b| b.field == "id_number" || b.field == "household_ref"));
}

#[tokio::test]
async fn structural_problems_are_reported_per_row_and_a_bad_header_names_the_columns() {
    let sys = TestSystem::start().await;
    let token = sys.admin_token().await;
    let grid_id = grid(&sys, &token).await;
    let body = format!(
        "household_ref,grid,address,relation,name,id_number\n\
         A,{grid_id},x,配偶,无户主,{}\n\
         B,{grid_id},x,户主,正常,{}\n\
         A,{grid_id},x,户主,回头,{}\n\
         C,nonexistent-grid,x,户主,无网格,{}\n\
         D,{grid_id},x,表亲,关系错,{}\n",
        id_number("320830", "19800101", 1),
        id_number("320830", "19800101", 2),
        id_number("320830", "19800101", 3),
        id_number("320830", "19800101", 4),
        id_number("320830", "19800101", 5),
    );
    let report = import(&sys, &token, &body, ImportOptions { skip_bad_rows: false, dry_run: true }).await;
    assert!(!report.committed);
    let by_line: Vec<(i64, String)> = report.bad_rows.iter().map(|b| (b.line, b.field.clone())).collect();
    assert_eq!(
        by_line,
        [(2, "relation".into()), (4, "household_ref".into()), (5, "grid".into()), (6, "relation".into())]
    );

    let mut client = sys.identity().await;
    let missing = "household_ref,grid,name\nA,b,c\n";
    let messages = vec![
        ImportHouseholdsRequest { part: Some(Part::Options(ImportOptions::default())) },
        ImportHouseholdsRequest { part: Some(Part::Chunk(missing.as_bytes().to_vec())) },
    ];
    let status = client.import_households(authed(&token, tokio_stream::iter(messages))).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("address") && status.message().contains("id_number"), "{}", status.message());
}

#[tokio::test]
async fn the_import_command_streams_a_file_and_reports() {
    let sys = TestSystem::start().await;
    let token = sys.admin_token().await;
    let grid_id = grid(&sys, &token).await;
    let body = csv(&grid_id, None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("households.csv");
    std::fs::write(&file, body).unwrap();
    let args = jiaxin::import_cli::ImportArgs {
        file,
        server: sys.addr(),
        username: sys.admin_username().into(),
        password: jiaxin_kit::Secret::new(common::ADMIN_PASSWORD.into()),
        skip_bad_rows: false,
        dry_run: false,
    };
    assert!(jiaxin::import_cli::run(args).await.unwrap());
    assert_eq!(household_count(&sys, &token).await, 3);
}

/// A county's import streams for minutes: it has the bulk deadline, not the ordinary one that
/// would cut it off (`--request-timeout-secs`); past the bulk deadline it ends DEADLINE_EXCEEDED
/// and writes nothing. Embedded, on a system of the test's own with short deadlines.
#[tokio::test]
async fn an_import_outlives_the_ordinary_deadline_and_stops_at_the_bulk_one() {
    use futures::StreamExt;

    let sys =
        TestSystem::start_private_with(false, &["--request-timeout-secs", "1", "--bulk-request-timeout-secs", "3"])
            .await;
    let token = sys.admin_token().await;
    let grid_id = grid(&sys, &token).await;
    let body = csv(&grid_id, None);
    // The options, then the file after `pause`: a slow upload.
    let slow_upload = |pause: std::time::Duration| {
        let options = ImportHouseholdsRequest { part: Some(Part::Options(ImportOptions::default())) };
        let file = ImportHouseholdsRequest { part: Some(Part::Chunk(body.as_bytes().to_vec())) };
        futures::stream::iter([(options, std::time::Duration::ZERO), (file, pause)]).then(
            |(message, wait)| async move {
                tokio::time::sleep(wait).await;
                message
            },
        )
    };

    let mut client = sys.identity().await;
    let cut_off = client.import_households(authed(&token, slow_upload(std::time::Duration::from_secs(4)))).await;
    let status = cut_off.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (tonic::Code::DeadlineExceeded, jiaxin_kit::deadline::DEADLINE_EXCEEDED)
    );
    assert_eq!(household_count(&sys, &token).await, 0, "an import past its deadline writes nothing");

    let report = client
        .import_households(authed(&token, slow_upload(std::time::Duration::from_millis(1500))))
        .await
        .unwrap()
        .into_inner();
    assert!(report.committed);
    assert_eq!(household_count(&sys, &token).await, 3);
}
