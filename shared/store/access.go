package store

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// Access is one IAM action on one table, as an operation needs it: Action is
// the IAM action ("dynamodb:GetItem"), Table the table name, or
// "<table>/index/<index>" for a query or scan of an index (the form of the
// IAM resource).
type Access struct{ Action, Table string }

// Accesses maps an operation input to the accesses it needs. Transactions are
// authorised per item action, so they are split the same way. An input of
// another kind gives one access {"unknown:<type>", "?"}.
func Accesses(in any) []Access { return appendAccesses(nil, in) }

// appendAccesses appends the accesses in needs to out (CallCounter passes a
// buffer on its stack, so counting allocates nothing).
func appendAccesses(out []Access, in any) []Access {
	idx := func(table, index *string) string {
		if index != nil {
			return aws.ToString(table) + "/index/" + aws.ToString(index)
		}
		return aws.ToString(table)
	}
	switch v := in.(type) {
	case *dynamodb.GetItemInput:
		return append(out, Access{"dynamodb:GetItem", aws.ToString(v.TableName)})
	case *dynamodb.PutItemInput:
		return append(out, Access{"dynamodb:PutItem", aws.ToString(v.TableName)})
	case *dynamodb.UpdateItemInput:
		return append(out, Access{"dynamodb:UpdateItem", aws.ToString(v.TableName)})
	case *dynamodb.DeleteItemInput:
		return append(out, Access{"dynamodb:DeleteItem", aws.ToString(v.TableName)})
	case *dynamodb.QueryInput:
		return append(out, Access{"dynamodb:Query", idx(v.TableName, v.IndexName)})
	case *dynamodb.ScanInput:
		return append(out, Access{"dynamodb:Scan", idx(v.TableName, v.IndexName)})
	case *dynamodb.BatchGetItemInput:
		for t := range v.RequestItems {
			out = append(out, Access{"dynamodb:BatchGetItem", t})
		}
		return out
	case *dynamodb.BatchWriteItemInput:
		for t := range v.RequestItems {
			out = append(out, Access{"dynamodb:BatchWriteItem", t})
		}
		return out
	case *dynamodb.TransactWriteItemsInput:
		for _, it := range v.TransactItems {
			switch {
			case it.Put != nil:
				out = append(out, Access{"dynamodb:PutItem", aws.ToString(it.Put.TableName)})
			case it.Update != nil:
				out = append(out, Access{"dynamodb:UpdateItem", aws.ToString(it.Update.TableName)})
			case it.Delete != nil:
				out = append(out, Access{"dynamodb:DeleteItem", aws.ToString(it.Delete.TableName)})
			case it.ConditionCheck != nil:
				out = append(out, Access{"dynamodb:ConditionCheckItem", aws.ToString(it.ConditionCheck.TableName)})
			}
		}
		return out
	case *dynamodb.TransactGetItemsInput:
		for _, it := range v.TransactItems {
			if it.Get != nil {
				out = append(out, Access{"dynamodb:GetItem", aws.ToString(it.Get.TableName)})
			}
		}
		return out
	}
	return append(out, Access{fmt.Sprintf("unknown:%T", in), "?"})
}
