"""What each emulated entity accepts on input and which of its fields a query may name."""

from __future__ import annotations

from dataclasses import dataclass

from qbsync.emulator.schema import (
    ADDRESS,
    ANY,
    BOOLEAN,
    DATE,
    EMAIL,
    NUMBER,
    PHONE,
    REF,
    TEXT,
    WEB,
    FieldType,
    ListOf,
    Struct,
)

CUSTOMER = "Customer"
ITEM = "Item"
INVOICE = "Invoice"
ACCOUNT = "Account"

# Properties every entity body may carry; QuickBooks ignores them on input.
_ENVELOPE: dict[str, FieldType] = {
    "Id": TEXT,
    "SyncToken": TEXT,
    "sparse": BOOLEAN,
    "domain": TEXT,
    "status": TEXT,
    "MetaData": ANY,
}

# Fields a client may set on a Customer; a full update clears the ones it leaves out.
CUSTOMER_WRITABLE: dict[str, FieldType] = {
    "Title": TEXT,
    "GivenName": TEXT,
    "MiddleName": TEXT,
    "FamilyName": TEXT,
    "Suffix": TEXT,
    "CompanyName": TEXT,
    "DisplayName": TEXT,
    "PrintOnCheckName": TEXT,
    "Notes": TEXT,
    "Active": BOOLEAN,
    "Job": BOOLEAN,
    "BillWithParent": BOOLEAN,
    "ParentRef": REF,
    "Taxable": BOOLEAN,
    "BillAddr": ADDRESS,
    "ShipAddr": ADDRESS,
    "PrimaryPhone": PHONE,
    "AlternatePhone": PHONE,
    "Mobile": PHONE,
    "Fax": PHONE,
    "PrimaryEmailAddr": EMAIL,
    "WebAddr": WEB,
    "DefaultTaxCodeRef": REF,
    "SalesTermRef": REF,
    "PaymentMethodRef": REF,
    "CurrencyRef": REF,
    "ARAccountRef": REF,
    "CustomerTypeRef": REF,
    "PreferredDeliveryMethod": TEXT,
    "ResaleNum": TEXT,
    "PrimaryTaxIdentifier": TEXT,
    "SecondaryTaxIdentifier": TEXT,
    "BusinessNumber": TEXT,
    "GSTIN": TEXT,
    "GSTRegistrationType": TEXT,
    "TaxExemptionReasonId": TEXT,
    "OpenBalanceDate": DATE,
    "Source": TEXT,
}

# Read-only fields QuickBooks computes; accepted on input (clients echo them) and ignored.
_CUSTOMER_READ_ONLY: dict[str, FieldType] = {
    "FullyQualifiedName": TEXT,
    "Level": NUMBER,
    "Balance": NUMBER,
    "BalanceWithJobs": NUMBER,
    "IsProject": BOOLEAN,
    "ClientEntityId": TEXT,
    "V4IDPseudonym": TEXT,
}

CUSTOMER_BODY = Struct(CUSTOMER, {**_ENVELOPE, **CUSTOMER_WRITABLE, **_CUSTOMER_READ_ONLY})

_MARKUP = Struct(
    "MarkupInfo",
    {"PercentBased": BOOLEAN, "Value": NUMBER, "Percent": NUMBER, "PriceLevelRef": REF},
)
_SALES_ITEM_DETAIL = Struct(
    "SalesItemLineDetail",
    {
        "ItemRef": REF,
        "ItemAccountRef": REF,
        "ClassRef": REF,
        "TaxCodeRef": REF,
        "PriceLevelRef": REF,
        "MarkupInfo": _MARKUP,
        "UnitPrice": NUMBER,
        "Qty": NUMBER,
        "ServiceDate": DATE,
        "TaxInclusiveAmt": NUMBER,
        "DiscountAmt": NUMBER,
        "DiscountRate": NUMBER,
    },
)
_LINE = Struct(
    "Line",
    {
        "Id": TEXT,
        "LineNum": NUMBER,
        "Description": TEXT,
        "Amount": NUMBER,
        "DetailType": TEXT,
        "SalesItemLineDetail": _SALES_ITEM_DETAIL,
        "SubTotalLineDetail": ANY,
        "SubtotalLineDetail": ANY,
        "DiscountLineDetail": ANY,
        "DescriptionLineDetail": ANY,
        "GroupLineDetail": ANY,
        "LinkedTxn": ANY,
        "CustomField": ANY,
    },
)

INVOICE_WRITABLE: dict[str, FieldType] = {
    "CustomerRef": REF,
    "Line": ListOf(_LINE),
    "DocNumber": TEXT,
    "TxnDate": DATE,
    "DueDate": DATE,
    "ShipDate": DATE,
    "PrivateNote": TEXT,
    "CustomerMemo": Struct("MemoRef", {"value": TEXT}),
    "BillAddr": ADDRESS,
    "ShipAddr": ADDRESS,
    "ShipFromAddr": ADDRESS,
    "BillEmail": EMAIL,
    "BillEmailCc": EMAIL,
    "BillEmailBcc": EMAIL,
    "SalesTermRef": REF,
    "CurrencyRef": REF,
    "DepartmentRef": REF,
    "ClassRef": REF,
    "ShipMethodRef": REF,
    "DepositToAccountRef": REF,
    "RecurDataRef": REF,
    "TaxExemptionRef": REF,
    "TrackingNum": TEXT,
    "PrintStatus": TEXT,
    "EmailStatus": TEXT,
    "ApplyTaxAfterDiscount": BOOLEAN,
    "AllowIPNPayment": BOOLEAN,
    "AllowOnlinePayment": BOOLEAN,
    "AllowOnlineCreditCardPayment": BOOLEAN,
    "AllowOnlineACHPayment": BOOLEAN,
    "GlobalTaxCalculation": TEXT,
    "ExchangeRate": NUMBER,
    "Deposit": NUMBER,
    "FreeFormAddress": BOOLEAN,
    "TxnTaxDetail": ANY,
    "DeliveryInfo": ANY,
    "CustomField": ListOf(ANY),
    "LinkedTxn": ListOf(ANY),
    "EInvoiceStatus": TEXT,
    "TxnSource": TEXT,
}

_INVOICE_READ_ONLY: dict[str, FieldType] = {
    "TotalAmt": NUMBER,
    "Balance": NUMBER,
    "HomeBalance": NUMBER,
    "HomeTotalAmt": NUMBER,
    "InvoiceLink": TEXT,
}

INVOICE_BODY = Struct(INVOICE, {**_ENVELOPE, **INVOICE_WRITABLE, **_INVOICE_READ_ONLY})


# Fields a client may set on an Item; Name is unique among items, ignoring case.
ITEM_WRITABLE: dict[str, FieldType] = {
    "Name": TEXT,
    "Description": TEXT,
    "Active": BOOLEAN,
    "Type": TEXT,
    "Taxable": BOOLEAN,
    "SalesTaxIncluded": BOOLEAN,
    "UnitPrice": NUMBER,
    "Sku": TEXT,
    "IncomeAccountRef": REF,
    "ExpenseAccountRef": REF,
    "AssetAccountRef": REF,
    "PurchaseDesc": TEXT,
    "PurchaseCost": NUMBER,
    "TrackQtyOnHand": BOOLEAN,
    "QtyOnHand": NUMBER,
    "InvStartDate": DATE,
    "SubItem": BOOLEAN,
    "ParentRef": REF,
    "SalesTaxCodeRef": REF,
    "PurchaseTaxCodeRef": REF,
    "ClassRef": REF,
}

_ITEM_READ_ONLY: dict[str, FieldType] = {"FullyQualifiedName": TEXT, "Level": NUMBER}

ITEM_BODY = Struct(ITEM, {**_ENVELOPE, **ITEM_WRITABLE, **_ITEM_READ_ONLY})


@dataclass(frozen=True)
class QueryableEntity:
    name: str
    # Fields a `where` or `orderby` may name, keyed case-insensitively; a dotted name
    # reaches into a nested object, a *Ref field compares its `value`.
    fields: frozenset[str]
    # True when rows with Active false are hidden unless the query filters on Active.
    hides_inactive: bool


_COMMON_QUERYABLE = {"Id", "SyncToken", "MetaData.CreateTime", "MetaData.LastUpdatedTime"}

QUERYABLE: dict[str, QueryableEntity] = {
    CUSTOMER.lower(): QueryableEntity(
        CUSTOMER,
        frozenset(
            _COMMON_QUERYABLE
            | {
                "DisplayName",
                "GivenName",
                "MiddleName",
                "FamilyName",
                "CompanyName",
                "FullyQualifiedName",
                "PrintOnCheckName",
                "Active",
                "Job",
                "ParentRef",
                "Balance",
                "BalanceWithJobs",
                "PrimaryEmailAddr",
                "PrimaryPhone",
                "BillAddr.City",
                "BillAddr.CountrySubDivisionCode",
                "BillAddr.PostalCode",
                "Level",
                "Taxable",
                "Notes",
            }
        ),
        hides_inactive=True,
    ),
    ITEM.lower(): QueryableEntity(
        ITEM,
        frozenset(
            _COMMON_QUERYABLE
            | {"Name", "Active", "Type", "Sku", "FullyQualifiedName", "UnitPrice", "Taxable"}
        ),
        hides_inactive=True,
    ),
    ACCOUNT.lower(): QueryableEntity(
        ACCOUNT,
        frozenset(
            _COMMON_QUERYABLE
            | {
                "Name",
                "Active",
                "AccountType",
                "AccountSubType",
                "Classification",
                "FullyQualifiedName",
            }
        ),
        hides_inactive=True,
    ),
    INVOICE.lower(): QueryableEntity(
        INVOICE,
        frozenset(
            _COMMON_QUERYABLE
            | {"CustomerRef", "DocNumber", "TxnDate", "DueDate", "TotalAmt", "Balance"}
        ),
        hides_inactive=False,
    ),
}
